"""The occupancy grid and the ray marching through it (nerf_jax.occupancy, samplers.occupancy)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import occupancy_grid, tasks, train
from nerf_jax.cameras import pinhole
from nerf_jax.samplers.occupancy import OccupancySampler
from nerf_jax.types import FieldOutput
from tests.conftest import override, save_old_layout, small_nerf_config

RADIUS, DENSITY = 0.5, 20.0


class SphereField(nn.Module):
  """An analytic field: density DENSITY inside the ball of radius RADIUS, 0 outside (truly empty);
  colour from the position. Counts nothing, trains nothing."""

  @nn.compact
  def __call__(self, points, viewdirs, cond=None, raw_noise=None):
    del viewdirs, cond, raw_noise
    inside = jnp.linalg.norm(points, axis=-1) < RADIUS
    return FieldOutput(rgb=jnp.clip(0.5 + points, 0.0, 1.0), density=jnp.where(inside, DENSITY, 0.0))


def sphere_model(**kw):
  settings = dict(fine=SphereField(), near=2.0, far=6.0, box=(-1.0, 1.0), resolution=16, step_size=0.01,
                  max_steps=400, stages=(64, 400), eval_stages=(64, 400))
  settings.update(kw)
  return OccupancySampler(**settings)


def camera_rays(size=12):
  pose = np.eye(4, dtype=np.float32)
  pose[:3, 3] = [0.3, -0.2, 3.0]  # off-centre, looking down -Z at the ball
  rays = pinhole.image_rays(jnp.asarray(pose), pinhole.centred_intrinsics(12.0, size, size), size, size)
  return jax.tree_util.tree_map(lambda x: x.reshape(-1, 3), rays)


def sphere_bits(res=16, lo=-1.0, hi=1.0):
  """1 for the cells that may touch the ball (centre within RADIUS + half a cell diagonal)."""
  centres = occupancy_grid.cell_centres(jnp.arange(res ** 3), res, lo, hi)
  half_diagonal = np.sqrt(3) * (hi - lo) / res / 2
  return (jnp.linalg.norm(centres, axis=-1) < RADIUS + half_diagonal).astype(jnp.float32)


def render(model, variables, rays, keys=None):
  """model.apply jitted (one compilation instead of an eager dispatch of every operation): its one
  render, 'fine'."""
  return jax.jit(model.apply)(variables, rays, keys)['fine']


def with_bits(variables, bits):
  return {**variables, 'occupancy': {**variables['occupancy'], 'bits': bits}}


def test_a_new_grid_samples_everywhere_in_the_box():
  model = sphere_model()
  rays = camera_rays()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  assert float(variables['occupancy']['bits'].min()) == 1.0
  assert float(variables['occupancy']['density'].max()) < 0  # never looked at
  np.testing.assert_array_equal(occupancy_grid.occupied_bits(variables['occupancy']['density'], 0.01, 0.01), 1.0)
  # With every cell sampled the render is the exact one: opacity 1 - exp(-DENSITY * chord) on each ray.
  result = render(model, variables, rays)
  o, d = np.asarray(rays.origins, np.float64), np.asarray(rays.directions, np.float64)
  d_unit = d / np.linalg.norm(d, axis=-1, keepdims=True)
  b = np.sum(o * d_unit, -1)
  disc = b * b - (np.sum(o * o, -1) - RADIUS ** 2)
  chord = 2 * np.sqrt(np.maximum(disc, 0.0))
  expected = 1 - np.exp(-DENSITY * chord)
  assert np.any(chord > 0.5) and np.any(chord == 0)
  np.testing.assert_allclose(result.acc, expected, atol=0.03)  # fixed steps of 0.01: a step's error


def test_samples_land_only_in_occupied_cells():
  model = sphere_model()
  rays = camera_rays()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  # Occupy a slab of cells only (x > 0): weights may be non-zero only at samples inside it.
  centres = occupancy_grid.cell_centres(jnp.arange(16 ** 3), 16, -1.0, 1.0)
  bits = (centres[:, 0] > 0).astype(jnp.float32)
  result = render(model, with_bits(variables, bits), rays, jax.random.split(jax.random.PRNGKey(1), 144))
  points = rays.origins[:, None] + result.z_vals[..., None] * rays.directions[:, None]
  cells, inside = occupancy_grid.cell_index(points, -1.0, 1.0, 16)
  weighted = np.asarray(result.weights) > 0
  assert weighted.sum() > 100  # the ball's x > 0 half is seen
  assert np.all(np.asarray(bits)[np.asarray(cells)[weighted]] == 1.0)
  assert np.all(np.asarray(inside)[weighted])


def test_the_grid_changes_nothing_where_skipped_cells_are_truly_empty():
  model = sphere_model()
  rays = camera_rays()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  everywhere = render(model, variables, rays)  # the new grid: every cell sampled
  skipping = render(model, with_bits(variables, sphere_bits()), rays)
  assert float(jnp.mean(sphere_bits())) < 0.15  # most of the box is skipped
  # Early termination (transmittance < 1e-4) may drop the very last, invisible, samples.
  np.testing.assert_allclose(skipping.rgb, everywhere.rgb, atol=2e-4)
  np.testing.assert_allclose(skipping.acc, everywhere.acc, atol=2e-4)
  assert bool(jnp.all(skipping.complete))


def test_update_fills_the_grid_from_the_field_then_follows_it():
  field = SphereField()
  density_fn = lambda p: field.apply({}, p[:, None, :], None).density[:, 0]
  res = 16
  density = -jnp.ones(res ** 3)
  bits = jnp.ones(res ** 3)
  # Warm-up: every cell looked at once.
  new = occupancy_grid.update_density(density, bits, jax.random.PRNGKey(0), 0, density_fn, res=res, lo=-1.0,
                                 hi=1.0, warmup_steps=10, chunk=1024)
  assert float(new.min()) >= 0
  centres = occupancy_grid.cell_centres(jnp.arange(res ** 3), res, -1.0, 1.0)
  deep_inside = jnp.linalg.norm(centres, axis=-1) < RADIUS - 0.11
  far_outside = jnp.linalg.norm(centres, axis=-1) > RADIUS + 0.11
  np.testing.assert_array_equal(new[deep_inside], DENSITY)
  np.testing.assert_array_equal(new[far_outside], 0.0)
  bits = occupancy_grid.occupied_bits(new, 0.01, 0.01)
  assert np.all(np.asarray(bits)[np.asarray(deep_inside)] == 1) and np.all(np.asarray(bits)[np.asarray(far_outside)] == 0)
  # After warm-up: half the cells per update, decayed by 0.95 where the field is now lower.
  half = lambda p: 0.5 * density_fn(p)
  later = occupancy_grid.update_density(new, bits, jax.random.PRNGKey(1), 100, half, res=res, lo=-1.0, hi=1.0,
                                   warmup_steps=10, chunk=1024)
  changed = np.asarray(later != new)
  assert 0 < changed.sum() <= res ** 3 // 2
  inside = np.asarray(deep_inside) & changed
  np.testing.assert_allclose(np.asarray(later)[inside], 0.95 * DENSITY)
  # Cells drawn from the occupied ones are ~all inside: far more of them changed than a uniform share.
  assert changed[np.asarray(deep_inside)].mean() > 2 * changed.mean()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_select_samples_takes_each_rays_first_candidates(seed):
  mask = jax.random.uniform(jax.random.PRNGKey(seed), (40, 30)) < 0.3
  budget = 200
  index = np.asarray(occupancy_grid.select_samples(mask, budget))
  used = index[index < mask.size]
  assert len(used) == min(budget, int(mask.sum())) and len(np.unique(used)) == len(used)
  assert np.all(np.asarray(mask).reshape(-1)[used])
  chosen = np.zeros(mask.size, bool)
  chosen[used] = True
  chosen = chosen.reshape(mask.shape)
  m = np.asarray(mask)
  counts = [chosen[r].sum() for r in range(len(m))]
  for r in range(len(m)):  # a prefix of each ray's candidates
    first = np.flatnonzero(m[r])[:counts[r]]
    assert np.array_equal(np.flatnonzero(chosen[r]), first)
  # Fair: every ray with candidates gets about the same number (cap or cap + 1), unless it has fewer.
  short = [c for r, c in enumerate(counts) if c < m[r].sum()]
  assert max(short) - min(short) <= 1
  assert np.array_equal(np.sort(np.asarray(occupancy_grid.select_samples(mask, mask.size))[:int(mask.sum())]),
                        np.flatnonzero(m.reshape(-1)))


def test_select_rays_takes_whole_rays_in_order():
  mask = jax.random.uniform(jax.random.PRNGKey(3), (40, 30)) < 0.3
  index, fits = occupancy_grid.select_rays(mask, 150)
  m, fits, index = np.asarray(mask), np.asarray(fits), np.asarray(index)
  assert fits[0] and not fits[-1] and np.all(np.diff(fits.astype(int)) <= 0)  # a prefix of the rays
  expected = np.flatnonzero((m & fits[:, None]).reshape(-1))
  np.testing.assert_array_equal(index[:len(expected)], expected)
  assert np.all(index[len(expected):] == m.size)


@pytest.fixture(scope='module')
def fast_config(spheres_root):
  return small_nerf_config(spheres_root, **{
      'model.field': 'ngp', 'model.encoding': 'hashgrid', 'model.dir_encoding': 'sh',
      'model.sampler': 'occupancy', 'model.box': (-1.5, 1.5), 'model.hash_levels': 4,
      'model.hash_features': 2, 'model.hash_table_log2': 12, 'model.hash_finest': 128, 'model.width': 32,
      'model.depth': 1, 'model.geo_features': 7, 'model.grid_resolution': 16, 'model.grid_every': 4,
      'model.grid_warmup_steps': 8, 'model.march_steps': 64, 'model.march_samples': (8, 48),
      'model.march_eval_samples': (16, 64), 'model.dtype': 'float32', 'data.random_bkgd': True,
      'train.lr': 2e-2, 'train.steps': 80, 'train.precrop_steps': 0, 'train.optimizer.b2': 0.99,
      'train.optimizer.eps': 1e-15, 'train.optimizer.weight_decay': 1e-3,
      'train.optimizer.weight_decay_pattern': 'density_|colour_|rgb', 'train.checkpoint_every': 80})


def test_fast_field_trains_updates_its_grid_and_leaves_the_grid_to_the_task(fast_config, tmp_path):
  task = tasks.make_task(fast_config)
  initial = train.create_train_state(fast_config, task)
  state = train.train_and_evaluate(fast_config, str(tmp_path))
  grid = state.model_state['occupancy']
  assert set(state.params) == {'params'}  # the grid is state, not a parameter
  assert float(jnp.min(grid['density'])) >= 0  # warm-up looked at every cell
  # The grid follows the field: cells in the central sphere (radius 0.6) hold more density than the
  # box's empty corners, and the central ones are occupied.
  res = fast_config.model.grid_resolution
  centres = occupancy_grid.cell_centres(jnp.arange(res ** 3), res, -1.5, 1.5)
  central = jnp.linalg.norm(centres, axis=-1) < 0.4
  corners = jnp.all(jnp.abs(centres) > 1.1, axis=-1)
  inner, outer = float(jnp.mean(grid['density'][central])), float(jnp.mean(grid['density'][corners]))
  assert inner > 3 * outer, (inner, outer)
  assert float(jnp.min(grid['bits'][central])) == 1.0
  # The optimiser keeps no state for the grid: only after_step changes it.
  cells = fast_config.model.grid_resolution ** 3
  assert not [x.shape for x in jax.tree_util.tree_leaves(state.opt_state) if cells in np.shape(x)]
  table0 = initial.params['params']['fine']['encoding']['table']
  assert float(jnp.abs(state.params['params']['fine']['encoding']['table'] - table0).max()) > 1e-3
  # Fitted: the untrained field scores about 12 dB on this view (a grey fog), the trained one far more.
  from nerf_jax import evaluate
  evaluator = evaluate.Evaluator(task, fast_config.eval.chunk)
  after, _ = evaluator.run(state.variables, 'val', (0, 1, 1))
  assert after['psnr'] > 16, after['psnr']
  # --mode network reports the grid: the share of cells occupied, and that every cell was seen.
  report, _ = task.inspect(state.variables, evaluator.predict)
  assert report['grid_occupancy'] == pytest.approx(float(jnp.mean(grid['bits'])), abs=1e-4)
  assert report['grid_cells_seen'] == 1.0


def test_random_background_replaces_white_by_each_rays_colour(fast_config):
  from nerf_jax import batching
  task = tasks.make_task(fast_config)
  plan = batching.BatchPlan.from_config(fast_config.train)
  data = jax.device_put(task.train_data())
  batch = task.sample_batch(data, jax.random.PRNGKey(0), 0, plan)
  white = task.sample_batch({k: v for k, v in data.items() if k != 'alphas'}, jax.random.PRNGKey(0), 0, plan)
  assert 'background' in batch and 'background' not in white
  # The same pixels; target = rgb * a + (1 - a) * background, so (1 - a) = change / (background - 1)
  # is one number per pixel, in [0, 1]: 0 on the spheres, 1 on the empty background.
  background = np.asarray(batch['background'])
  change = np.asarray(batch['rgb']) - np.asarray(white['rgb'])
  clear = np.all(np.abs(background - 1.0) > 0.1, axis=-1)
  transparency = change[clear] / (background[clear] - 1.0)
  np.testing.assert_allclose(transparency, transparency[:, :1].repeat(3, 1), atol=1e-4)
  assert transparency.min() > -1e-4 and transparency.max() < 1 + 1e-4
  assert np.any(transparency[:, 0] > 0.999) and np.any(transparency[:, 0] < 1e-3)


def test_occupancy_sampler_refuses_density_noise(fast_config):
  from nerf_jax import config_checks
  from nerf_jax.errors import ConfigError
  with pytest.raises(ConfigError, match=r"model.sampler='occupancy' marches a box in world space: it needs "
                                        r"model.density_noise=0 \(got 1.0\)"):
    config_checks.validate(override(fast_config, **{'model.density_noise': 1.0}))


def test_the_optimiser_decays_only_the_matching_weights():
  import optax
  from nerf_jax import optim
  config = override(small_nerf_config('.'), **{'train.optimizer.weight_decay': 0.1,
                                               'train.optimizer.weight_decay_pattern': 'density_.*kernel',
                                               'train.lr': 1.0})
  params = {'params': {'fine': {'encoding': {'table': jnp.ones(4)},
                                'density_hidden': {'kernel': jnp.ones(3), 'bias': jnp.ones(3)}}}}
  tx = optim.make_optimizer(config.train)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  fine = optax.apply_updates(params, updates)['params']['fine']
  assert float(fine['density_hidden']['kernel'][0]) == pytest.approx(0.9)  # decayed: lr x 0.1
  np.testing.assert_array_equal(fine['density_hidden']['bias'], 1.0)
  np.testing.assert_array_equal(fine['encoding']['table'], 1.0)


def test_evaluation_leaves_no_ray_out():
  # A budget of 2 samples a ray on a new grid: most rays do not fit the first round, and evaluation
  # goes on until each has every sample: the exact render, as with a budget that fits everything.
  rays = camera_rays()
  small, large = sphere_model(eval_stages=(1, 2)), sphere_model(eval_stages=(64, 400))
  variables = jax.jit(small.init)(jax.random.PRNGKey(0), rays)
  a, b = render(small, variables, rays), render(large, variables, rays)
  assert bool(jnp.all(a.complete))
  np.testing.assert_allclose(a.rgb, b.rgb, atol=2e-4)
  # Training with the same small budget leaves rays out, and says which.
  c = render(small.clone(stages=(1, 2)), variables, rays, jax.random.split(jax.random.PRNGKey(1), 144))
  assert 0 < float(jnp.mean(c.complete)) < 1


def test_the_grid_serves_nerfs_mlp_too(fast_config):
  # configs/lego_occupancy.py's combination: the 'mlp' field with its frequency encodings, marched.
  from nerf_jax import batching
  config = override(fast_config, **{'model.field': 'mlp', 'model.encoding': 'frequency',
                                    'model.dir_encoding': 'frequency', 'model.width': 32, 'model.depth': 2,
                                    'model.skip': 0, 'model.width_view': 16})
  task = tasks.make_task(config)
  assert task.sampler.RENDERS == ('fine',) and type(task.model).__name__ == 'OccupancySampler'
  state = train.create_train_state(config, task)
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(0), 0, plan)
  loss_fn = lambda p: task.loss({**p, **state.model_state}, batch, 0)
  (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(state.params)
  assert np.isfinite(float(loss)) and 0 < float(aux['rays_complete']) <= 1
  assert float(jnp.abs(grads['params']['fine']['trunk_0']['kernel']).sum()) > 0


def test_checkpoints_of_the_old_layout_evaluate_and_resume(fast_config, tmp_path):
  task = tasks.make_task(fast_config)
  variables, opt_state = save_old_layout(fast_config, task, str(tmp_path), 6)
  state, _ = train.load_state(fast_config, task, str(tmp_path))
  assert int(state.step) == 6 and set(state.params) == {'params'} and set(state.model_state) == {'occupancy'}
  for a, b in zip(jax.tree_util.tree_leaves(state.variables), jax.tree_util.tree_leaves(variables)):
    np.testing.assert_array_equal(a, b)
  # The moments are the old optimiser's moments of the trained collection, leaf for leaf.
  old = jax.tree_util.tree_leaves(opt_state.inner_states['params'].inner_state)
  new = jax.tree_util.tree_leaves(state.opt_state)
  assert len(old) == len(new) and all(np.array_equal(a, b) for a, b in zip(old, new))
  assert any(float(np.abs(x).max()) > 0 for x in new if np.ndim(x))  # not a fresh optimiser state
  resumed = train.train_and_evaluate(override(fast_config, **{'train.steps': 8, 'eval.train_views': (0, 1, 1)}),
                                     str(tmp_path))
  assert int(resumed.step) == 8 and 'occupancy' in resumed.model_state
