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


def test_run_names_are_distinct():
  names = [importlib.import_module(f'configs.{n}').get_config().name for n in NAMES]
  assert len(set(names)) == len(names)


def test_img_fit_defaults_match_the_original_lego_view0():
  config = importlib.import_module('configs.img_fit').get_config()
  assert (config.data.scene, config.data.split, config.data.view) == ('lego', 'train', 0)
  assert (config.model.width, config.model.depth, config.model.num_freqs) == (128, 4, 10)
  assert (config.train.batch_size, config.train.lr, config.train.lr_decay_steps) == (8192, 5e-4, 10_000)
