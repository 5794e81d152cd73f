import importlib
import os

import pytest

from tests.conftest import REPO

NAMES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, 'configs')) if f.endswith('.py') and f != '__init__.py')


@pytest.mark.parametrize('name', NAMES)
def test_config_has_every_default_key(name):
  default = importlib.import_module('configs.default').get_config()
  config = importlib.import_module(f'configs.{name}').get_config()
  assert config.task in ('img_fit', 'nerf')
  assert set(default.to_dict()) == set(config.to_dict())
  for section in ('data', 'model', 'train', 'eval'):
    assert set(default[section].keys()) == set(config[section].keys()), section
  assert config.train.batch_size % config.train.microbatches == 0


def test_default_config_shows_every_plugin_key():
  # Plug-ins declare their own keys; configs/default.py still lists them (a generated block), so one file
  # shows every key. Regenerate with python -m nerf_jax.plugins --write.
  from nerf_jax import plugins
  with open(os.path.join(REPO, 'configs', 'default.py')) as f:
    lines = f.read().split('\n')
  start = lines.index(plugins.BEGIN)
  assert lines[start:lines.index(plugins.END) + 1] == plugins.default_config_block(), (
      'configs/default.py lists stale plug-in keys: run python -m nerf_jax.plugins --write')
  config = importlib.import_module('configs.default').get_config()
  for key, (value, _, _) in plugins.owned_keys().items():
    section, leaf = key.split('.')
    assert config[section][leaf] == value, key


def test_run_names_are_distinct():
  names = [importlib.import_module(f'configs.{n}').get_config().name for n in NAMES]
  assert len(set(names)) == len(names)


def test_img_fit_defaults_match_the_original_lego_view0():
  config = importlib.import_module('configs.img_fit').get_config()
  assert (config.data.scene, config.data.split, config.data.view) == ('lego', 'train', 0)
  assert (config.model.width, config.model.depth, config.model.num_freqs) == (128, 4, 10)
  assert (config.train.batch_size, config.train.lr, config.train.lr_decay_steps) == (8192, 5e-4, 10_000)


@pytest.mark.parametrize('name', NAMES)
def test_every_config_passes_validation(name):
  from nerf_jax import config_checks
  assert config_checks.config_problems(importlib.import_module(f'configs.{name}').get_config()) == []


def test_validation_reports_every_broken_rule_at_once():
  from nerf_jax import config_checks, errors
  from tests.conftest import override
  config = override(importlib.import_module('configs.lego').get_config(), **{
      'train.lr': -1e-3, 'train.batch_size': 0, 'data.near': 6.0, 'data.far': 2.0, 'train.steps': -5,
      'data.input_ratio': 1.5, 'model.num_coarse': 2, 'eval.views': (0, -1, 0), 'render.formats': ('avi',),
      'data.format': 'llf', 'model.dtype': 'float16', 'data.batching': 'some'})
  problems = config_checks.config_problems(config)
  expected = ['train.lr=-0.001 must be > 0', 'train.batch_size=0 must be >= 1', 'data.near=6.0 must be < data.far=2.0',
              'train.steps=-5 must be >= 0', 'data.input_ratio=1.5 must be in (0, 1]', 'model.num_coarse=2 must be >= 3',
              'eval.views=(0, -1, 0)', "render.formats=('avi',)", "data.format='llf' must be one of ['auto', 'blender', ",
              "model.dtype='float16'", "data.batching='some'"]
  for text in expected:
    assert sum(text in p for p in problems) == 1, (text, problems)
  assert len(problems) == len(expected), problems
  # Sizes against the devices come from the same function (batching.size_problems).
  sizes = override(config.copy_and_resolve_references(), **{'train.batch_size': 1026})
  assert any('does not split evenly over 4 devices' in p for p in config_checks.config_problems(sizes, 4))
  with pytest.raises(errors.ConfigError, match=r'^11 config value\(s\) cannot work: .*\.$'):
    config_checks.validate(config)
