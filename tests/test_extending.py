"""docs/extending.md, run as written: each example's new file and registry line are executed from this
test (nothing in nerf_jax/ is edited), then trained for two steps."""

import json
import os
import re
import sys
import types

import imageio.v3 as iio
import jax
import numpy as np
import pytest

import nerf_jax
from configs import default
from nerf_jax import datasets, fields, losses, optim, tasks, train
from nerf_jax.datasets import blender
from tests.conftest import REPO, override, small_fit_config, small_nerf_config

GUIDE = os.path.join(REPO, 'docs', 'extending.md')
REGISTRIES = (tasks.TASKS, datasets.FORMATS, fields.ENCODINGS, fields.FIELDS, losses.LOSS_TERMS,
              optim.OPTIMIZERS)


def guide_sections():
  """{section title: [(path, code), ...]} for the guide's ```python title="path" blocks, in order."""
  with open(GUIDE) as f:
    text = f.read()
  sections = {}
  for section in re.split(r'^## ', text, flags=re.M)[1:]:
    title = section.splitlines()[0]
    blocks = re.findall(r'```python title="([^"]+)"\n(.*?)```', section, flags=re.S)
    if blocks:
      sections[title] = blocks
  return sections


def _is_new(path):
  return not os.path.exists(os.path.join(REPO, path))


def _load(path, code, config):
  """Runs one block the way the guide means it: a new module, a registry line in an existing module of
  nerf_jax (run in that module's namespace), or config keys (run against `config`). Returns the name
  of the module it made, or None."""
  if path == 'configs/default.py':
    exec(code, {'config': config})
  elif _is_new(path):
    name = path[:-len('.py')].replace('/', '.')
    module = types.ModuleType(name)
    module.__file__ = os.path.join(REPO, path)
    sys.modules[name] = module
    exec(compile(code, module.__file__, 'exec'), module.__dict__)
    parent, _, leaf = name.rpartition('.')
    setattr(sys.modules[parent], leaf, module)
    return name
  else:
    module = sys.modules[path[:-len('.py')].replace('/', '.').removesuffix('.__init__')]
    exec(code, dict(vars(module)))


@pytest.fixture(scope='module')
def extended():
  """The guide's four examples registered; a config builder that has their keys. Undone afterwards."""
  before = [dict(r._entries) for r in REGISTRIES]
  keys = default.get_config()
  made = [_load(path, code, keys) for blocks in guide_sections().values() for path, code in blocks]

  def with_keys(config, **values):
    config = config.copy_and_resolve_references()
    for section in ('model', 'loss'):
      for key, value in keys[section].items():
        if key not in config[section]:
          config[section][key] = value
    return override(config, **values)

  yield with_keys
  for registry, entries in zip(REGISTRIES, before):
    registry._entries = entries
  for name in filter(None, made):
    parent, _, leaf = name.rpartition('.')
    delattr(sys.modules[parent], leaf)
    del sys.modules[name]


def test_each_example_is_one_new_file_and_one_registry_line():
  sections = guide_sections()
  assert len(sections) == 4, list(sections)
  for title, blocks in sections.items():
    in_package = [(p, c) for p, c in blocks if p.startswith('nerf_jax/')]
    new = [p for p, _ in in_package if _is_new(p)]
    registry_lines = [line for p, c in in_package if not _is_new(p) for line in c.splitlines()
                      if '.register(' in line]
    assert len(new) == 1 and len(registry_lines) == 1, (title, new, registry_lines)
    # Nothing else in the package: the other blocks are config keys.
    assert all(p.startswith('nerf_jax/') or p == 'configs/default.py' for p, _ in blocks), title


def _train_two_steps(config, tmp_path):
  config = override(config, **{'train.steps': 2, 'train.log_every': 1, 'train.checkpoint_every': 2,
                               'train.eval_every': 0})
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 2
  assert all(bool(np.all(np.isfinite(x))) for x in jax.tree_util.tree_leaves(jax.device_get(state.params)))
  return state


def test_loss_term_example(extended, spheres_root, tmp_path):
  config = extended(small_nerf_config(spheres_root), **{'loss.terms': ('opacity',),
                                                        'loss.opacity_ramp_steps': 10})
  task = tasks.make_task(config)
  assert list(task.loss_terms) == ['opacity']
  # The term's weight ramps from 0: nothing at step 0, the full weighted entropy from step 10.
  from nerf_jax.types import RenderResult
  acc = np.array([0.5, 0.9], np.float32)
  renders = {'fine': RenderResult(*([None] * 2), acc, *([None] * 3))}
  entropy = -np.mean(acc * np.log(acc) + (1 - acc) * np.log(1 - acc))
  term = task.loss_terms['opacity']
  assert float(term(renders, None, 0)) == 0.0
  assert float(term(renders, None, 20)) == pytest.approx(1e-3 * entropy, rel=1e-5)
  _train_two_steps(config, tmp_path)
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(tmp_path))
  events.Reload()
  assert 'train/loss_opacity' in events.Tags()['scalars']


def _write_npz_scene(spheres_root, root):
  """The built-in scene's Blender files (RGBA PNGs, transforms) repacked as the guide's npz format."""
  os.makedirs(os.path.join(root, 'spheres'))
  for split in ('train', 'val'):
    with open(os.path.join(spheres_root, 'spheres', f'transforms_{split}.json')) as f:
      meta = json.load(f)
    images = np.stack([iio.imread(os.path.join(spheres_root, 'spheres', fr['file_path'] + '.png'))
                       for fr in meta['frames']])
    poses = np.array([fr['transform_matrix'] for fr in meta['frames']], np.float32)
    focal = 0.5 * images.shape[2] / np.tan(0.5 * meta['camera_angle_x'])
    intrinsics = np.array([focal, focal, images.shape[2] / 2, images.shape[1] / 2], np.float32)
    np.savez(os.path.join(root, 'spheres', f'{split}.npz'), images=images, poses=poses,
             intrinsics=intrinsics)


def test_dataset_format_example(extended, spheres_root, tmp_path):
  root = str(tmp_path / 'npz')
  _write_npz_scene(spheres_root, root)
  config = extended(small_nerf_config(root), **{'data.format': 'npz', 'data.input_ratio': 1.0})
  scene = datasets.load_split(config.data, 'train')
  reference = blender.load_split(spheres_root, 'spheres', 'train')
  np.testing.assert_allclose(scene.images, reference.images, atol=1e-6)
  np.testing.assert_allclose(scene.poses, reference.poses, atol=1e-6)
  np.testing.assert_allclose(scene.intrinsics, reference.intrinsics, rtol=1e-6)
  np.testing.assert_allclose(scene.alphas, reference.alphas, atol=1e-6)
  with pytest.raises(nerf_jax.errors.DatasetError, match='test.npz.*missing'):
    datasets.load_split(config.data, 'test')
  _train_two_steps(override(config, **{'eval.chunk': 4096}), tmp_path / 'run')


def test_encoding_example(extended, spheres_root, tmp_path):
  config = extended(small_fit_config(spheres_root), **{'model.encoding': 'fourier',
                                                       'model.fourier_features': 32})
  task = tasks.make_task(config)
  params = train.create_train_state(config, task).params
  assert params['params']['Dense_0']['kernel'].shape == (2 + 2 * 32, 64)
  # The projection's product is counted with the MLP's, from the traced network.
  width = config.model.width
  mlp = 2 * ((2 + 64) * width + width * width + width * 3)
  assert task.forward_flops(params) == pytest.approx(mlp + 2 * 2 * 32)
  _train_two_steps(config, tmp_path)


def test_task_example(extended, spheres_root, tmp_path):
  config = extended(small_fit_config(spheres_root), **{'task': 'img_fit_all',
                                                       'eval.train_views': (0, -1, 4)})
  _train_two_steps(config, tmp_path)
  with open(tmp_path / 'eval' / 'train_step2' / 'metrics.json') as f:
    assert list(json.load(f)['views']) == ['train_000', 'train_004']
  with pytest.raises(nerf_jax.errors.ConfigError, match="config.task='img_fit_all' has no camera"):
    tasks.make_task(config).camera_path(config.render)


def test_unknown_names_list_the_choices():
  for key, value, message in (('task', 'nerff', r"Unknown task 'nerff': task must be one of"),
                              ('data.format', 'nerfstudio', r"data.format must be one of \['blender'"),
                              ('model.encoding', 'hash', r'model.encoding must be one of'),
                              ('model.dir_encoding', 'spherical', r'model.dir_encoding must be one of'),
                              ('model.field', 'nerfacto', r"model.field must be one of \['mlp', 'ngp'\]"),
                              ('loss.terms', ('distortion',), r'loss.terms must be one of')):
    config = override(default.get_config(), **{'task': 'nerf', key: value})
    with pytest.raises(nerf_jax.errors.ConfigError, match=message):
      if key == 'data.format':
        datasets.load_split(config.data, 'train')
      elif key == 'task':
        tasks.make_task(config)
      elif key == 'loss.terms':
        losses.LOSS_TERMS.get(value[0])
      else:
        fields.build_field(config.model)
