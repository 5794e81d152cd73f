"""Scene contraction, the proposal sampler and its interval losses (samplers.proposal, interval_losses)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import config_checks, occupancy_grid, sampling
from nerf_jax.cameras import pinhole
from nerf_jax.errors import ConfigError
from nerf_jax.losses import interval
from nerf_jax.samplers.occupancy import OccupancySampler
from nerf_jax.samplers.proposal import ProposalSampler
from nerf_jax.types import FieldOutput
from tests.conftest import override, small_nerf_config


def test_contraction_against_its_closed_form_and_its_inverse():
  radius = 4.0
  points = jnp.array([[2.0, -1.0, 3.0],  # inside the cube: scaled only
                      [8.0, 0.0, 0.0],  # |u|_inf = 2: y = (2 - 1/2) u / 2
                      [4.0, -40.0, 12.0],  # |u|_inf = 10
                      [1e9, 0.0, 0.0]])  # towards infinity: onto |y|_inf = 2
  y = sampling.contract(points, radius)
  expected = np.array([[0.5, -0.25, 0.75], [1.5, 0.0, 0.0],
                       [(2 - 0.1) * 0.1, (2 - 0.1) * -1.0, (2 - 0.1) * 0.3], [2.0, 0.0, 0.0]])
  np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
  # The inverse, away from infinity, over many scales.
  x = jax.random.normal(jax.random.PRNGKey(0), (2000, 3)) * jnp.exp(
      jax.random.uniform(jax.random.PRNGKey(1), (2000, 1), minval=-3.0, maxval=5.0))
  y = sampling.contract(x, radius)
  assert float(jnp.max(jnp.abs(y))) < 2.0
  np.testing.assert_allclose(sampling.uncontract(y, radius), x, rtol=2e-4, atol=1e-5)
  # Continuous at the cube's face, where the two branches meet.
  face = jnp.array([[4.0 - 1e-4, 1.0, 0.0], [4.0 + 1e-4, 1.0, 0.0]])
  np.testing.assert_allclose(*sampling.contract(face, radius), atol=1e-4)


def test_the_spacing_maps_and_their_inverses():
  s = jnp.linspace(0.0, 1.0, 101)
  for near, far, split in ((0.0, 1.0, None), (0.2, 4000.0, 4.0)):
    t = sampling.spacing_to_distance(s, near, far, split)
    assert abs(float(t[0]) - near) < 1e-5 and abs(float(t[-1]) - far) / far < 1e-4
    assert bool(jnp.all(jnp.diff(t) > 0))
    np.testing.assert_allclose(sampling.distance_to_spacing(t, near, far, split), s, atol=1e-5)
  # Piecewise: half the samples out to the split, the rest even in disparity beyond it.
  t = sampling.spacing_to_distance(jnp.array([0.25, 0.5, 0.75]), 0.2, 4000.0, 4.0)
  np.testing.assert_allclose(t, [2.1, 4.0, 1.0 / (0.5 / 4.0 + 0.5 / 4000.0)], rtol=1e-5)


def test_the_interlevel_bound_on_hand_made_histograms():
  env_edges = jnp.array([[0.0, 0.5, 1.0]])
  env_weights = jnp.array([[0.2, 0.8]])
  edges = jnp.array([[0.0, 0.25, 0.4, 0.6, 0.75, 1.0]])
  # [0.4, 0.6] straddles both envelope intervals; the others lie in one.
  np.testing.assert_allclose(interval.outer_bound(edges, env_edges, env_weights),
                             [[0.2, 0.2, 1.0, 0.8, 0.8]], atol=1e-7)
  # Overlap is strict: an envelope interval that only touches one at an edge does not bound it.
  np.testing.assert_allclose(interval.outer_bound(jnp.array([[0.5, 1.0]]), env_edges, env_weights),
                             [[0.8]], atol=1e-7)
  # Only the first interval's weight exceeds its bound: (0.3 - 0.2)^2 / 0.3.
  weights = jnp.array([[0.3, 0.1, 0.2, 0.3, 0.1]])
  loss = interval.interlevel_loss(edges, weights, env_edges, env_weights)
  np.testing.assert_allclose(loss, 0.1 ** 2 / (0.3 + interval.EPS), rtol=1e-5)
  # The loss teaches the envelope only: raising its weight there lowers it; the field gets no gradient.
  grads = jax.grad(interval.interlevel_loss, argnums=(1, 3))(edges, weights, env_edges, env_weights)
  assert float(jnp.abs(grads[0]).max()) == 0.0
  assert float(grads[1][0, 0]) < 0 and float(grads[1][0, 1]) == 0.0


def test_the_interlevel_bound_against_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(5):
    env_edges = np.sort(rng.uniform(0, 1, (3, 9)), axis=-1)
    edges = np.sort(rng.uniform(0, 1, (3, 13)), axis=-1)
    env_weights = rng.uniform(0, 1, (3, 8))
    bound = np.asarray(interval.outer_bound(jnp.asarray(edges), jnp.asarray(env_edges),
                                                   jnp.asarray(env_weights)))
    for r in range(3):
      for i in range(12):
        a, b = edges[r, i], edges[r, i + 1]
        overlap = (env_edges[r, 1:] > a) & (env_edges[r, :-1] < b)
        np.testing.assert_allclose(bound[r, i], env_weights[r][overlap].sum(), rtol=1e-5, atol=1e-6)


def test_distortion_loss_against_its_quadratic_brute_force():
  rng = np.random.default_rng(1)
  edges = np.sort(rng.uniform(0, 1, (4, 17)), axis=-1)
  weights = rng.uniform(0, 1, (4, 16)) / 8
  mids = 0.5 * (edges[:, 1:] + edges[:, :-1])
  brute = np.mean([np.sum(w[:, None] * w[None, :] * np.abs(m[:, None] - m[None, :]))
                   + np.sum(w ** 2 * np.diff(e)) / 3 for e, w, m in zip(edges, weights, mids)])
  np.testing.assert_allclose(interval.distortion_loss(jnp.asarray(edges), jnp.asarray(weights)),
                             brute, rtol=1e-5)
  # Weight gathered into one interval costs less than the same weight spread along the ray.
  spread = jnp.full((1, 16), 1 / 16)
  compact = jnp.zeros((1, 16)).at[0, 7].set(1.0)
  line = jnp.linspace(0.0, 1.0, 17)[None]
  assert float(interval.distortion_loss(line, compact)) < float(interval.distortion_loss(line, spread))


# --- the sampler, on analytic fields ---

CENTRE, RADIUS, DENSITY = np.array([0.0, 0.0, -40.0]), 10.0, 50.0


class Ball(nn.Module):
  """Density DENSITY inside a ball far beyond the contraction's cube, 0 elsewhere; grey. Its points
  arrive contracted (or not: contracted=False), and it finds the world through sampling.uncontract."""
  radius: float = None

  @nn.compact
  def __call__(self, points, viewdirs=None, cond=None):
    del viewdirs, cond
    world = points if self.radius is None else sampling.uncontract(points, self.radius)
    return FieldOutput(rgb=jnp.full(points.shape, 0.5), density=ball_density(world))


def ball_density(world):
  """float32 [..., 3] -> [...]: DENSITY inside the ball, 0 outside."""
  return jnp.where(jnp.linalg.norm(world - CENTRE, axis=-1) < RADIUS, DENSITY, 0.0)


def ball_sampler(contract_radius=4.0, proposals=2, **kw):
  settings = dict(fine=Ball(contract_radius), proposals=tuple(Ball(contract_radius) for _ in range(proposals)),
                  proposal_samples=(128, 32)[:proposals], field_samples=16, near=0.1,
                  far=1000.0 * contract_radius, radius=contract_radius,
                  padding=0.01, white_bkgd=False)
  settings.update(kw)
  return ProposalSampler(**settings)


def centre_rays():
  """Rays from the origin towards the ball, through a 4x4 image (each hits it)."""
  rays = pinhole.image_rays(jnp.eye(4), pinhole.centred_intrinsics(400.0, 4, 4), 4, 4)
  return jax.tree_util.tree_map(lambda x: x.reshape(-1, 3), rays)


def test_the_proposals_find_a_far_surface_in_contracted_space():
  rays = centre_rays()
  first_hit = CENTRE[2] + RADIUS  # z = -30: the front of the ball, depth 30 along the axis
  out = jax.jit(ball_sampler().apply)({}, rays, None)['fine']
  # Two proposal levels put the field's 16 samples on the ball: opaque, at its front, 30 away, where
  # the spacing's steps are 0.9 long.
  assert float(out.acc.min()) > 0.99
  np.testing.assert_allclose(out.depth, -first_hit, rtol=0.02)
  z = np.asarray(out.z_vals)
  assert np.mean(np.abs(z + first_hit) < 2.0) > 0.3  # most of the samples spent near the surface
  # The envelope of an exact proposal bounds the field's weights: the interlevel term is ~0.
  renders = jax.jit(ball_sampler().apply)({}, rays, jax.random.split(jax.random.PRNGKey(0), 16))
  term = interval.interlevel(override(small_nerf_config('.'), **{'loss.interlevel_weight': 1.0}).loss)
  assert float(term(renders, None, 0)) < 1e-3
  assert set(renders['fine'].extras) >= {'sdist', 'proposal_sdist_0', 'proposal_weights_1'}


def test_the_occupancy_grid_in_contracted_space_finds_the_far_surface_and_keeps_it():
  radius, steps = 4.0, 512
  sampler = OccupancySampler(fine=Ball(radius), near=0.1, far=1000.0 * radius, box=(-2.0, 2.0), resolution=32,
                             step_size=2.0 * (radius - 0.1) / steps, max_steps=steps, stages=(64, steps),
                             eval_stages=(64, steps), white_bkgd=False, radius=radius)
  rays = centre_rays()
  variables = jax.jit(sampler.init)(jax.random.PRNGKey(0), rays, None)
  render = jax.jit(lambda v: sampler.apply(v, rays, None)['fine'])
  # The grid's update sees the ball's density through its contracted cells (warm-up: every cell).
  # (Cells far out span tens of units: one random point each may miss the ball, so a few updates.)
  update = jax.jit(lambda v, key: sampler.update(v, jnp.int32(0), key, lambda _, p: ball_density(p)))
  updated = variables
  for i in range(8):
    updated = update(updated, jax.random.PRNGKey(i))
  bits = updated['occupancy']['bits']
  cell = lambda world: occupancy_grid.cell_index(sampling.contract(jnp.asarray(world), radius), -2.0, 2.0, 32)[0]
  assert float(bits[cell([0.0, 0.0, -40.0])]) == 1.0 and float(bits[cell([0.0, 0.0, 40.0])]) == 0.0
  assert 0.0 < float(bits.mean()) < 0.05
  # A new grid (every cell sampled): the steps at 30 units are ~0.9 long, so the depth is the ball's
  # front to within a step. The updated grid keeps the ball opaque; its front may move back by up to a
  # cell, which at 30 units of a 32^3 contracted grid is 16 units deep (the cell whose random points
  # missed the ball's front): cells grow with distance, as the steps do.
  for v, tolerance in ((variables, 1.0), (updated, 2.5)):
    out = render(v)
    assert float(out.acc.min()) > 0.99
    np.testing.assert_allclose(out.depth, 30.0 + tolerance / 2, atol=tolerance / 2 + 0.5)
  # The grid's steps: never under the linear part's, growing with distance (cells far out are big).
  cell_steps = occupancy_grid.contracted_step_sizes(32, -2.0, 2.0, near=0.1, far=1000.0 * radius, radius=radius,
                                               max_steps=steps)
  assert float(cell_steps.min()) >= 2.0 * (radius - 0.1) / steps - 1e-7
  assert float(cell_steps[cell([0.0, 0.0, -40.0])]) > 10 * float(cell_steps[cell([0.0, 0.0, -1.0])])
  # Without contraction the same sampler's box ends at 2: the ball is out of its world.
  flat = OccupancySampler(fine=Ball(None), near=0.1, far=1000.0, box=(-2.0, 2.0), resolution=32,
                          step_size=4.0 * np.sqrt(3) / steps, max_steps=steps, stages=(64, steps),
                          eval_stages=(64, steps), white_bkgd=False)
  out = jax.jit(lambda v: flat.apply(v, rays, None)['fine'])(variables)
  assert float(out.acc.max()) < 0.01


def test_a_tiny_proposal_model_learns_the_scene_and_its_proposals_learn_to_bound_it(spheres_root):
  """Jitted steps on one fixed batch (no training loop: the loop is the other samplers' tests'): the
  photometric loss falls, and so does the interlevel term, which only the proposal fields learn from."""
  import functools
  from nerf_jax import batching, tasks, train
  config = small_nerf_config(spheres_root, **{
      'model.field': 'ngp', 'model.encoding': 'hashgrid', 'model.dir_encoding': 'sh', 'model.sampler': 'proposal',
      'model.hash_levels': 4, 'model.hash_features': 2, 'model.hash_table_log2': 12, 'model.hash_finest': 64,
      'model.proposal_samples': (16,), 'model.field_samples': 8, 'model.proposal_hash_levels': 2,
      'model.proposal_hash_finest': (32,), 'model.proposal_hash_table_log2': 10, 'model.width': 16,
      'model.depth': 1, 'loss.terms': ('interlevel', 'distortion'), 'train.lr': 1e-2, 'train.precrop_steps': 0,
      'train.batch_size': 256})
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(1), 100, plan)
  step = jax.jit(functools.partial(train.train_step, loss_fn=task.loss))
  initial = state.params['params']
  state, first = step(state, batch)
  for _ in range(40):
    state, metrics = step(state, batch)
  assert float(metrics['loss']) < 0.5 * float(first['loss'])
  assert float(metrics['loss_distortion']) > 0
  # The trained field beside the proposal as it started: the learned proposal bounds it far better.
  proposal = [name for name in initial if name.startswith('proposals')]
  assert proposal
  untrained = {**state.variables, 'params': {**state.params['params'], **{n: initial[n] for n in proposal}}}
  _, before = jax.jit(task.loss)(untrained, batch, state.step)
  assert float(metrics['loss_interlevel']) < 0.5 * float(before['loss_interlevel'])


def test_rays_that_start_beyond_the_contraction_radius_are_a_one_line_error(spheres_root):
  from nerf_jax import tasks
  config = small_nerf_config(spheres_root, **{
      'model.field': 'ngp', 'model.encoding': 'hashgrid', 'model.sampler': 'proposal', 'model.contraction': 'linf',
      'model.box': (-2.0, 2.0), 'model.contract_radius': 1.5, 'model.proposal_hash_finest': (64, 128),
      'model.hash_finest': 256})
  with pytest.raises(ConfigError, match=r'near=2, beyond model.contract_radius=1.5.*raise model.contract_radius') as err:
    tasks.make_task(config)
  assert '\n' not in str(err.value)


@pytest.mark.parametrize('values, words', [
    ({'model.contraction': 'linf', 'model.box': (-2.0, 2.0), 'data.ndc': True}, 'data.ndc=True'),
    ({'model.contraction': 'linf'}, 'model.box'),
    ({'model.proposal_hash_finest': (128, 4096)}, 'larger than the shown field'),
    ({'model.proposal_hash_finest': (128,)}, 'one resolution per proposal field'),
    ({'model.contraction': 'sphere'}, "model.contraction='sphere'"),
    ({'model.contraction': 'linf', 'model.box': (-2.0, 2.0), 'model.sampler': 'hierarchical'},
     "needs a sampler that contracts space"),
])
def test_bad_proposal_configs_are_one_line_errors(values, words):
  config = override(small_nerf_config('.'), **{'model.field': 'ngp', 'model.encoding': 'hashgrid',
                                               'model.sampler': 'proposal', **values})
  with pytest.raises(ConfigError, match=words.replace('(', r'\(').replace(')', r'\)')) as err:
    config_checks.validate(config)
  assert '\n' not in str(err.value)
