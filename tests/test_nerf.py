"""NeRF end to end on the generated scene: training lowers the loss and puts opacity on the object."""

import json
import os

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import batching, datasets, errors, tasks, train
from nerf_jax.tasks import select_views
from tests.conftest import override, small_nerf_config


@pytest.fixture(scope='module')
def trained(spheres_root, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('nerf_run'))
  config = small_nerf_config(spheres_root)
  task = tasks.make_task(config)
  fresh = train.create_train_state(config, task)
  state = train.train_and_evaluate(config, workdir)
  return config, task, fresh, state, workdir


def _loss(task, params, config):
  data = jax.device_put(task.train_data())
  step = config.train.precrop_steps + 1
  batch = task.sample_batch(data, jax.random.PRNGKey(7), step, batching.BatchPlan.from_config(config.train))
  return float(task.loss(params, batch, step)[0])


def test_training_lowers_the_loss_and_finds_the_object(trained, spheres_root):
  config, task, fresh, state, _ = trained
  before, after = _loss(task, fresh.variables, config), _loss(task, state.variables, config)
  assert after < 0.3 * before, (before, after)
  # Opacity where the object is, transparency where the background is, on a training view.
  view = next(task.eval_views('train', (0, 1, 1)))
  outputs = train.evaluate.Evaluator(task, 1024).render(state.variables, view)
  alpha = task.scene.alphas[0]
  assert outputs['acc'][alpha > 0.99].mean() > 0.8
  assert outputs['acc'][alpha == 0].mean() < 0.2


def test_eval_microbatches_render_the_same_view(trained):
  # Splitting each chunk into parts inside the jitted call is a memory/speed choice, never a result.
  # (In float32: in bfloat16 a last-bit difference in a sum can round a layer's input the other way.)
  config, _, _, state, _ = trained
  task = tasks.make_task(override(config, **{'model.dtype': 'float32'}))
  view = next(task.eval_views('val', (0, 1, 1)))
  whole = train.evaluate.Evaluator(task, 1024).render(state.variables, view)
  parts = train.evaluate.Evaluator(task, 1024, microbatches=8).render(state.variables, view)
  # Colours and opacity lie in [0, 1]; depth in scene units up to far (the same relative tolerance),
  # compared times opacity: depth is sum(w z) / acc, which magnifies a last-bit difference where acc is small.
  np.testing.assert_allclose(parts['rgb'], whole['rgb'], atol=1e-5, err_msg='rgb')
  np.testing.assert_allclose(parts['acc'], whole['acc'], atol=1e-5, err_msg='acc')
  np.testing.assert_allclose(parts['depth'] * parts['acc'], whole['depth'] * whole['acc'],
                             atol=1e-5 * config.data.far, err_msg='depth')
  with pytest.raises(errors.ConfigError, match='eval.microbatches=3'):
    train.evaluate.Evaluator(task, 1024, microbatches=3)


def test_evaluation_writes_views_depth_and_opacity(trained):
  config, _, _, _, workdir = trained
  result = train.evaluate_checkpoint(config, workdir)
  out = os.path.join(workdir, 'eval', 'val_step250')
  assert result['num_views'] == 2 and not result['subset']
  for name in ('val_000', 'val_001'):
    for suffix, shape in (('', (32, 32, 3)), ('_gt_pred', (32, 64, 3)), ('_depth', (32, 32)),
                          ('_acc', (32, 32))):
      assert iio.imread(os.path.join(out, f'{name}{suffix}.png')).shape == shape
  with open(os.path.join(out, 'metrics.json')) as f:
    saved = json.load(f)
  assert set(saved['views']) == {'val_000', 'val_001'} and saved['psnr'] > 15
  subset = train.evaluate_checkpoint(override(config, **{'eval.views': (1, -1, 1)}), workdir)
  assert subset['subset'] and list(subset['views']) == ['val_001']


def test_select_views_like_cams():
  assert select_views(10, (0, -1, 1)) == list(range(10))
  assert select_views(100, (0, -1, 25)) == [0, 25, 50, 75]
  assert select_views(5, (1, 3, 1)) == [1, 2]
  assert select_views(5, (0, 50, 2)) == [0, 2, 4]


def test_lego_cpu_config_reads_lego(lego_root):
  from configs import lego_cpu
  config = override(lego_cpu.get_config(), **{'data.root': lego_root})
  scene = datasets.load_split(config.data, 'val', views=[0])
  assert scene.images.shape == (1, 100, 100, 3)
  task = tasks.make_task(override(config, **{'data.split': 'val'}))
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(0), 0,
                            batching.BatchPlan.from_config(config.train))
  rays = task.batch_rays({}, batch)  # made in the loss, from the batch's pixels and their cameras
  assert rays.origins.shape == (config.train.batch_size, 3)
  np.testing.assert_allclose(jnp.linalg.norm(rays.origins, axis=-1), 4.03, atol=0.05)
  np.testing.assert_array_equal(rays.camera[:, 0], batch['image'])


def test_nerf_resume_across_the_precrop_switch_is_exact(spheres_root, tmp_path):
  # Stopped at step 6, inside precrop (10 steps), resumed to 16: the data order, precrop, learning
  # rate and sampling jitter all derive from (seed, step), so nothing about the run is lost.
  settings = {'train.steps': 16, 'train.precrop_steps': 10, 'train.lr_decay_steps': 16,
              'train.checkpoint_every': 6, 'train.log_every': 8, 'eval.train_views': (0, 1, 1)}
  straight = train.train_and_evaluate(small_nerf_config(spheres_root, **settings), str(tmp_path / 'a'))
  train.train_and_evaluate(small_nerf_config(spheres_root, **{**settings, 'train.steps': 6}),
                           str(tmp_path / 'b'))
  resumed = train.train_and_evaluate(small_nerf_config(spheres_root, **settings), str(tmp_path / 'b'))
  for a, b in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_a_batch_larger_than_its_pool_is_a_config_error(spheres_root):
  # One 32x32 image a step: 1024 pixels, 256 inside the precrop box (half of each side).
  plan = lambda **kw: batching.BatchPlan(**{'batch_size': 512, **kw})
  task = tasks.make_task(small_nerf_config(spheres_root, **{'data.batching': 'single_image'}))
  train.make_train_iteration(task, plan())
  with pytest.raises(errors.ConfigError, match='train.batch_size=512 exceeds the 256 items'):
    train.make_train_iteration(task, plan(precrop_steps=10, precrop_frac=0.5))
  with pytest.raises(errors.ConfigError, match='train.batch_size=2048 exceeds the 1024 items'):
    train.make_train_iteration(task, plan(batch_size=2048))
