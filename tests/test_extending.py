"""docs/extending.md, run as written: each example's new file and registry line are executed from this
test (nothing in nerf_jax/ is edited), then trained for two steps."""

import json
import os
import re
import sys
import types

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nerf_jax
from configs import default
from nerf_jax import config_checks, datasets, fields, losses, plugins, samplers, tasks, train
from nerf_jax.datasets import blender
from nerf_jax.errors import ConfigError
from nerf_jax.types import NO_CAMERA, FieldOutput, RenderResult
from tests.conftest import REPO, override, small_fit_config, small_nerf_config

GUIDE = os.path.join(REPO, 'docs', 'extending.md')
EXAMPLES = 8


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


def _load(path, code):
  """Runs one block the way the guide means it: a new module, or a registry line in an existing module
  of nerf_jax (run in that module's namespace). Returns the name of the module it made, or None."""
  if _is_new(path):
    name = path[:-len('.py')].replace('/', '.')
    module = types.ModuleType(name)
    module.__file__ = os.path.join(REPO, path)
    sys.modules[name] = module
    exec(compile(code, module.__file__, 'exec'), module.__dict__)
    parent, _, leaf = name.rpartition('.')
    setattr(sys.modules[parent], leaf, module)
    return name
  module = sys.modules[path[:-len('.py')].replace('/', '.').removesuffix('.__init__')]
  exec(code, dict(vars(module)))
  return None


@pytest.fixture(scope='module')
def extended():
  """The guide's examples registered, with their config keys (configs made from now on have them:
  configs/default.py gathers every registered plug-in's). Undone afterwards."""
  before = [dict(r._entries) for r in plugins.REGISTRIES]
  made = [_load(path, code) for blocks in guide_sections().values() for path, code in blocks]
  yield override
  for registry, entries in zip(plugins.REGISTRIES, before):
    registry._entries = entries
  for name in filter(None, made):
    parent, _, leaf = name.rpartition('.')
    delattr(sys.modules[parent], leaf)
    del sys.modules[name]


def test_each_example_is_one_new_file_and_one_registry_line():
  sections = guide_sections()
  assert len(sections) == EXAMPLES, list(sections)
  for title, blocks in sections.items():
    in_package = [(p, c) for p, c in blocks if p.startswith('nerf_jax/')]
    new = [p for p, _ in in_package if _is_new(p)]
    registry_lines = [line for p, c in in_package if not _is_new(p) for line in c.splitlines()
                      if '.register(' in line]
    assert len(new) == 1 and len(registry_lines) == 1, (title, new, registry_lines)
    # Nothing else: a plug-in's config keys live in its file.
    assert all(p.startswith('nerf_jax/') for p, _ in blocks), title


def _train_two_steps(config, tmp_path, views=(0, 1, 1)):
  # One view in the closing evaluation (views None: the config's): the examples show that a plug-in
  # trains, not what it scores.
  settings = {'train.steps': 2, 'train.log_every': 1, 'train.checkpoint_every': 2, 'train.eval_every': 0}
  config = override(config, **settings, **({} if views is None else {'eval.train_views': views}))
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
  acc = np.array([0.5, 0.9], np.float32)
  renders = {'fine': RenderResult(rgb=None, depth=None, acc=acc, disp=None, weights=None, z_vals=None)}
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
  _train_two_steps(config, tmp_path, views=None)
  with open(tmp_path / 'eval' / 'train_step2' / 'metrics.json') as f:
    assert list(json.load(f)['views']) == ['train_000', 'train_004']
  with pytest.raises(nerf_jax.errors.ConfigError, match="config.task='img_fit_all' has no camera"):
    tasks.make_task(config).camera_path(config.render)


def test_sampler_example(extended, spheres_root, tmp_path):
  config = extended(small_nerf_config(spheres_root), **{'model.sampler': 'uniform',
                                                        'model.uniform_samples': 32})
  task = tasks.make_task(config)
  assert type(task.model).__name__ == 'UniformSampler' and task.shown == 'fine'
  variables = {**train.create_train_state(config, task).variables}
  view = next(task.eval_views('val', (0, 1, 1)))
  rays = jax.tree_util.tree_map(lambda x: x[:64], view.inputs)
  renders = jax.jit(task.model.apply)(variables, rays, None)
  assert list(renders) == ['fine']
  fine = renders['fine']
  # Two-step rendering: the interval edges end at far, and the weights composite to what
  # volume_render gives from the same densities.
  assert fine.edges.shape == (64, 33) and np.allclose(fine.edges[:, -1], config.data.far)
  np.testing.assert_allclose(fine.edges[:, :-1], fine.z_vals)
  assert np.all(np.asarray(fine.acc) <= 1.0 + 1e-6)
  state = _train_two_steps(config, tmp_path)
  with open(tmp_path / 'eval' / 'val_step2' / 'metrics.json') as f:
    assert json.load(f)['psnr'] > 0
  assert 'model.uniform_samples' in plugins.resume_defaults()  # an older run resumes as if it had it
  del state


def test_appearance_field_example(extended, spheres_root, tmp_path):
  config = extended(small_nerf_config(spheres_root), **{'model.field': 'mlp_appearance',
                                                        'model.mlp_appearance_features': 4})
  task = tasks.make_task(config)
  params = train.create_train_state(config, task).params
  codes = params['params']['fine']['conditioning']['codes']
  assert codes.shape == (len(task.scene.poses), 4)
  # Each training view renders with its own code; a view of no training camera with the codes' mean.
  codes = jax.random.normal(jax.random.PRNGKey(5), codes.shape)
  variables = jax.tree_util.tree_map(lambda x: x, params)
  for net in ('coarse', 'fine'):
    variables['params'][net]['conditioning']['codes'] = codes
  view = next(task.eval_views('train', (1, 2, 1)))
  rays = jax.tree_util.tree_map(lambda x: x[:64], view.inputs)
  assert np.all(np.asarray(rays.camera) == 1)
  predict = jax.jit(task.predict)
  own = predict(variables, rays)['rgb']
  unseen = predict(variables, rays.replace(camera=np.full_like(rays.camera, NO_CAMERA)))['rgb']
  mean = jax.tree_util.tree_map(lambda x: x, variables)
  for net in ('coarse', 'fine'):
    mean['params'][net]['conditioning']['codes'] = jnp.broadcast_to(codes.mean(0), codes.shape)
  np.testing.assert_allclose(unseen, predict(mean, rays)['rgb'], atol=1e-6)
  assert float(np.abs(own - unseen).max()) > 1e-4
  state = _train_two_steps(config, tmp_path)
  trained = state.params['params']['fine']['conditioning']['codes']
  assert float(np.abs(np.asarray(trained) - np.asarray(params['params']['fine']['conditioning']['codes'])).max()) > 0


def test_pose_refinement_example(extended, spheres_root, tmp_path):
  from nerf_jax.cameras import pose_deltas
  # Rodrigues against a known rotation: a quarter turn about +z takes +x to +y.
  quarter = np.asarray(pose_deltas.axis_angle_rotation(jnp.array([0.0, 0.0, np.pi / 2])))
  np.testing.assert_allclose(quarter @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(pose_deltas.axis_angle_rotation(jnp.zeros(3)), np.eye(3), atol=1e-6)
  config = extended(small_nerf_config(spheres_root), **{'model.camera': 'pose_deltas'})
  task = tasks.make_task(config)
  fresh = train.create_train_state(config, task)
  assert fresh.params['camera']['rotation'].shape == (len(task.scene.poses), 3)
  assert task.optimizer_groups() == (('^camera/', 0.1),)
  # Zero deltas make the given poses: the same rays as without a camera model.
  plan_batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(0), 30,
                                 __import__('nerf_jax').batching.BatchPlan.from_config(config.train))
  given = task.rays(plan_batch['poses'], plan_batch['intrinsics'], plan_batch['rows'], plan_batch['cols'])
  refined = task.batch_rays(fresh.variables, plan_batch)
  np.testing.assert_allclose(refined.directions, given.directions, atol=1e-6)
  np.testing.assert_allclose(refined.origins, given.origins, atol=1e-6)
  # The loss reaches the deltas ...
  grads = jax.jit(jax.grad(lambda p: task.loss(p, plan_batch, 30)[0]))(fresh.variables)
  assert float(jnp.abs(grads['camera']['rotation']).max()) > 0
  state = _train_two_steps(config, tmp_path)
  moved = np.asarray(state.params['camera']['translation'])
  assert np.abs(moved).max() > 0
  # ... and evaluation uses the given poses: rendering does not depend on them.
  view = next(task.eval_views('val', (0, 1, 1)))
  rays = jax.tree_util.tree_map(lambda x: x[:64], view.inputs)
  zeroed = {**state.variables, 'camera': jax.tree_util.tree_map(jnp.zeros_like, state.variables['camera'])}
  predict = jax.jit(task.predict)
  np.testing.assert_array_equal(predict(state.variables, rays)['rgb'], predict(zeroed, rays)['rgb'])


def test_optimiser_example(extended, spheres_root, tmp_path):
  _train_two_steps(extended(small_fit_config(spheres_root), **{'train.optimizer.name': 'nadam'}), tmp_path)


def test_unknown_names_list_the_choices():
  for key, value, message in (('task', 'nerff', r"Unknown task 'nerff': task must be one of"),
                              ('data.format', 'nerfstudio', r"data.format must be one of \['auto', 'blender'"),
                              ('model.encoding', 'hash', r'model.encoding must be one of'),
                              ('model.dir_encoding', 'spherical', r'model.dir_encoding must be one of'),
                              ('model.field', 'nerfacto', r"model.field\b.*must be one of \[.*'mlp'.*'ngp'"),
                              ('model.sampler', 'zipnerf', r"model.sampler\b.*must be one of \['hierarchical', 'neus', 'occupancy', 'proposal'"),
                              ('model.camera', 'barf', r"model.camera\b.*must be one of \['fixed'"),
                              ('loss.terms', ('curvature',), r'loss.terms must be one of')):
    config = override(default.get_config(), **{'task': 'nerf', key: value})
    with pytest.raises(nerf_jax.errors.ConfigError, match=message):
      if key == 'data.format':
        datasets.load_split(config.data, 'train')
      elif key == 'task':
        tasks.make_task(config)
      elif key == 'loss.terms':
        losses.LOSS_TERMS.get(value[0])
      elif key in ('model.sampler', 'model.camera'):
        config_checks.validate(config)
      else:
        fields.build_field(config.model, fields.FieldScene())


def test_a_field_without_what_the_sampler_needs_is_a_config_error(spheres_root):
  import flax.linen as nn

  class OldStyle(nn.Module):  # the first generation's contract: a (rgb, sigma) tuple
    @nn.compact
    def __call__(self, points, viewdirs, cond=None):
      return jnp.zeros((*points.shape[:-1], 3)), jnp.ones(points.shape[:-1])

  class NoDensity(nn.Module):
    @nn.compact
    def __call__(self, points, viewdirs, cond=None):
      return FieldOutput(rgb=jnp.zeros((*points.shape[:-1], 3)), extras={'sdf': jnp.ones(points.shape[:-1])})

  for name, field, message in (('old_style', OldStyle, r"model.field='old_style' \(OldStyle\) returns tuple, "
                                                       r"not a types.FieldOutput: model.sampler='hierarchical' "
                                                       r"needs \['rgb', 'density'\]"),
                               ('no_density', NoDensity, r"model.sampler='hierarchical' needs \['density'\] from "
                                                         r"its field, but model.field='no_density' gives "
                                                         r"\['rgb', 'sdf'\]")):
    fields.FIELDS.register(name, lambda model_config, encoding, dir_encoding, scene, f=field: f())
    try:
      with pytest.raises(ConfigError, match=message):
        tasks.make_task(small_nerf_config(spheres_root, **{'model.field': name}))
    finally:
      fields.FIELDS.unregister(name)


def test_a_loss_term_needing_what_the_sampler_does_not_render_is_a_config_error(spheres_root):
  losses.LOSS_TERMS.register('eikonal_test', lambda loss_config: (lambda renders, batch, step: 0.0),
                             needs=('sdf_gradient',))
  try:
    config = small_nerf_config(spheres_root, **{'loss.terms': ('eikonal_test',)})
    with pytest.raises(ConfigError, match=r"loss.terms has 'eikonal_test', which needs \['sdf_gradient'\] "
                                          r"from the renders, but model.sampler='hierarchical' renders "
                                          r"\['edges'\]"):
      tasks.make_task(config)
    # A field that gives the extra: the check passes and the term finds it in the renders, per sample.
    import flax.linen as nn

    class WithGradient(nn.Module):
      @nn.compact
      def __call__(self, points, viewdirs, cond=None):
        raw = nn.Dense(4)(points)
        return FieldOutput(rgb=jax.nn.sigmoid(raw[..., :3]), density=jax.nn.softplus(raw[..., 3]),
                           extras={'sdf_gradient': jnp.ones_like(points)})

    fields.FIELDS.register('with_gradient', lambda model_config, encoding, dir_encoding, scene: WithGradient())
    try:
      task = tasks.make_task(override(config, **{'model.field': 'with_gradient'}))
      params, _ = task.init_variables(jax.random.PRNGKey(0))
      renders = task.model.apply(params, task.init_inputs(), None)
      samples = config.model.num_coarse + config.model.num_fine
      assert renders['fine'].extras['sdf_gradient'].shape == (*renders['fine'].rgb.shape[:-1], samples, 3)
    finally:
      fields.FIELDS.unregister('with_gradient')
  finally:
    losses.LOSS_TERMS.unregister('eikonal_test')


def test_every_plug_in_key_is_in_the_default_config_with_a_comment():
  config = default.get_config()
  for key, (value, comment, owner) in plugins.owned_keys().items():
    section, _, rest = key.partition('.')
    node = config[section]
    for part in rest.split('.'):
      node = node[part]
    assert node == value or list(node) == list(value), key
    assert len(comment) > 10, (key, owner)
  assert plugins.describe() and all(' # ' in line for line in plugins.describe())
