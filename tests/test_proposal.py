"""Scene contraction, the proposal sampler and its interval losses (samplers.proposal, interval_losses)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import camera, config_checks, interval_losses, sampling
from nerf_jax.errors import ConfigError
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
  np.testing.assert_allclose(interval_losses.outer_bound(edges, env_edges, env_weights),
                             [[0.2, 0.2, 1.0, 0.8, 0.8]], atol=1e-7)
  # Only the first interval's weight exceeds its bound: (0.3 - 0.2)^2 / 0.3.
  weights = jnp.array([[0.3, 0.1, 0.2, 0.3, 0.1]])
  loss = interval_losses.interlevel_loss(edges, weights, env_edges, env_weights)
  np.testing.assert_allclose(loss, 0.1 ** 2 / (0.3 + interval_losses.EPS), rtol=1e-5)
  # The loss teaches the envelope only: raising its weight there lowers it; the field gets no gradient.
  grads = jax.grad(interval_losses.interlevel_loss, argnums=(1, 3))(edges, weights, env_edges, env_weights)
  assert float(jnp.abs(grads[0]).max()) == 0.0
  assert float(grads[1][0, 0]) < 0 and float(grads[1][0, 1]) == 0.0


def test_the_interlevel_bound_against_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(5):
    env_edges = np.sort(rng.uniform(0, 1, (3, 9)), axis=-1)
    edges = np.sort(rng.uniform(0, 1, (3, 13)), axis=-1)
    env_weights = rng.uniform(0, 1, (3, 8))
    bound = np.asarray(interval_losses.outer_bound(jnp.asarray(edges), jnp.asarray(env_edges),
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
  np.testing.assert_allclose(interval_losses.distortion_loss(jnp.asarray(edges), jnp.asarray(weights)),
                             brute, rtol=1e-5)
  # Weight gathered into one interval costs less than the same weight spread along the ray.
  spread = jnp.full((1, 16), 1 / 16)
  compact = jnp.zeros((1, 16)).at[0, 7].set(1.0)
  line = jnp.linspace(0.0, 1.0, 17)[None]
  assert float(interval_losses.distortion_loss(line, compact)) < float(interval_losses.distortion_loss(line, spread))


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
    inside = jnp.linalg.norm(world - CENTRE, axis=-1) < RADIUS
    return FieldOutput(rgb=jnp.full(points.shape, 0.5), density=jnp.where(inside, DENSITY, 0.0))


def ball_sampler(contract_radius=4.0, proposals=2, **kw):
  settings = dict(fine=Ball(contract_radius), proposals=tuple(Ball(contract_radius) for _ in range(proposals)),
                  proposal_samples=(128, 32)[:proposals], field_samples=16, near=0.1,
                  far=1000.0 * contract_radius, split=contract_radius, radius=contract_radius,
                  padding=0.01, white_bkgd=False)
  settings.update(kw)
  return ProposalSampler(**settings)


def centre_rays():
  """Rays from the origin towards the ball, through a 4x4 image (each hits it)."""
  rays = camera.image_rays(jnp.eye(4), camera.centred_intrinsics(400.0, 4, 4), 4, 4)
  return jax.tree_util.tree_map(lambda x: x.reshape(-1, 3), rays)


def test_the_proposals_find_a_far_surface_in_contracted_space():
  rays = centre_rays()
  first_hit = CENTRE[2] + RADIUS  # z = -30: the front of the ball, depth 30 along the axis
  for sampler in (ball_sampler(), ball_sampler(proposals=0, field_samples=16)):
    out = jax.jit(sampler.apply)({}, rays, None)['fine']
    depth = np.asarray(out.depth)
    if sampler.proposals:
      # Two proposal levels put the field's 16 samples on the ball: opaque, at its front.
      assert float(out.acc.min()) > 0.99
      np.testing.assert_allclose(depth, -first_hit, rtol=0.02)
      z = np.asarray(out.z_vals)
      assert np.mean(np.abs(z + first_hit) < 2.0) > 0.3  # most of the samples spent near the surface
    else:
      # Without proposals the 16 even samples over the ray's s miss it or land anywhere.
      assert float(out.acc.min()) < 0.99 or np.abs(depth + first_hit).max() > 0.6
  # The envelope of an exact proposal bounds the field's weights: the interlevel term is ~0.
  renders = jax.jit(ball_sampler().apply)({}, rays, jax.random.split(jax.random.PRNGKey(0), 16))
  term = interval_losses.interlevel(override(small_nerf_config('.'), **{'loss.interlevel_weight': 1.0}).loss)
  assert float(term(renders, None, 0)) < 1e-3
  assert set(renders['fine'].extras) >= {'sdist', 'proposal_sdist_0', 'proposal_weights_1'}


def test_a_tiny_proposal_run_trains(spheres_root, tmp_path):
  from tests.conftest import train_on_a_fixed_batch
  config = small_nerf_config(spheres_root, **{
      'model.field': 'ngp', 'model.encoding': 'hashgrid', 'model.dir_encoding': 'sh', 'model.sampler': 'proposal',
      'model.hash_levels': 4, 'model.hash_features': 2, 'model.hash_table_log2': 12, 'model.hash_finest': 64,
      'model.proposal_samples': (16,), 'model.field_samples': 8, 'model.proposal_hash_levels': 2,
      'model.proposal_hash_finest': (32,), 'model.proposal_hash_table_log2': 10, 'model.width': 16,
      'model.depth': 1, 'loss.terms': ('interlevel', 'distortion'), 'train.steps': 40,
      'train.lr': 1e-2, 'train.precrop_steps': 0, 'train.checkpoint_every': 40})
  task, _, before, after = train_on_a_fixed_batch(config, str(tmp_path))
  assert float(after) < 0.7 * float(before)


@pytest.mark.parametrize('values, words', [
    ({'model.contraction': 'linf', 'model.box': (-2.0, 2.0), 'data.ndc': True}, 'data.ndc=True'),
    ({'model.contraction': 'linf'}, 'model.box'),
    ({'model.proposal_hash_finest': (128, 4096)}, 'larger than the shown field'),
    ({'model.proposal_hash_finest': (128,)}, 'one resolution per proposal field'),
    ({'model.contraction': 'sphere'}, "model.contraction='sphere'"),
])
def test_bad_proposal_configs_are_one_line_errors(values, words):
  config = override(small_nerf_config('.'), **{'model.field': 'ngp', 'model.encoding': 'hashgrid',
                                               'model.sampler': 'proposal', **values})
  with pytest.raises(ConfigError, match=words.replace('(', r'\(').replace(')', r'\)')) as err:
    config_checks.validate(config)
  assert '\n' not in str(err.value)
