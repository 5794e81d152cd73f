import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax.rendering import volume_render


def _render(sigma, z, directions=None, rgb=None, white_bkgd=True):
  rays, samples = sigma.shape
  rgb = jnp.full((rays, samples, 3), 0.25) if rgb is None else rgb
  directions = jnp.tile(jnp.array([[0.0, 0.0, -1.0]]), (rays, 1)) if directions is None else directions
  return volume_render(rgb, sigma, z, directions, far=6.0, white_bkgd=white_bkgd)


def test_constant_density_slab_gives_analytic_transmittance():
  # sigma = 0.8 on z in [3, 4.5), 0 elsewhere; direction length 2, so the slab is 3 units thick.
  z = jnp.linspace(2.0, 6.0, 801)[None, :-1]
  sigma = jnp.where((z >= 3.0) & (z < 4.5), 0.8, 0.0)
  out = _render(sigma, z, directions=jnp.array([[0.0, 2.0, 0.0]]))
  transmittance = np.exp(-0.8 * 1.5 * 2.0)
  np.testing.assert_allclose(out.acc[0], 1.0 - transmittance, rtol=1e-4)
  np.testing.assert_allclose(out.rgb[0], 0.25 * (1 - transmittance) + transmittance, rtol=1e-4)


def test_white_background_where_nothing_is_hit():
  z = jnp.linspace(2.0, 6.0, 65)[None, :-1].repeat(2, 0)
  out = _render(jnp.zeros((2, 64)), z)
  np.testing.assert_allclose(out.rgb, 1.0)
  np.testing.assert_allclose(out.acc, 0.0)
  assert np.all(np.isfinite(out.disp)) and np.all(out.disp == 0)
  black = _render(jnp.zeros((2, 64)), z, white_bkgd=False)
  np.testing.assert_allclose(black.rgb, 0.0)


def test_one_huge_density_gives_a_one_hot_weight():
  z = jnp.linspace(2.0, 6.0, 17)[None, :-1]
  sigma = jnp.zeros((1, 16)).at[0, 5].set(1e6)
  out = _render(sigma, z)
  np.testing.assert_allclose(out.weights[0], np.eye(16)[5], atol=1e-6)
  np.testing.assert_allclose(out.depth[0], z[0, 5], rtol=1e-6)


def test_finite_values_and_gradients_at_extreme_densities():
  z = jnp.linspace(2.0, 6.0, 33)[None, :-1].repeat(3, 0)
  # Densities from ~1e-35 (nothing) to ~1e13 (a wall at the first sample).
  raw = jnp.stack([jnp.full(32, -80.0), jnp.full(32, 0.0), jnp.full(32, 30.0)])

  def loss(raw):
    out = _render(jnp.exp(raw), z)
    return jnp.sum(out.rgb) + jnp.sum(out.depth) + jnp.sum(out.disp)

  value, grad = jax.value_and_grad(loss)(raw)
  assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_a_small_density_everywhere_stays_nearly_transparent():
  # The last sample's interval ends at far: a softplus density's small floor must not turn into an
  # opaque wall at the back of every ray (NeRF's 1e10 last interval would give acc = 1 here).
  z = jnp.linspace(2.0, 6.0, 65)[None, :-1]
  out = _render(jnp.full((1, 64), 1e-4), z)
  np.testing.assert_allclose(out.acc[0], 1 - np.exp(-1e-4 * 4.0), rtol=1e-2)


def test_weights_from_alphas_equal_weights_from_densities():
  # The two first steps meet: alpha_i = 1 - exp(-sigma_i delta_i) makes the same weights, and
  # composite gives the same render from either.
  from nerf_jax import rendering
  z = jnp.sort(jax.random.uniform(jax.random.PRNGKey(0), (4, 24), minval=2.0, maxval=5.9), axis=-1)
  sigma = jax.random.uniform(jax.random.PRNGKey(1), (4, 24), maxval=3.0)
  directions = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
  weights, edges = rendering.weights_from_density(sigma, z, directions, far=6.0)
  deltas = jnp.diff(edges, axis=-1) * jnp.linalg.norm(directions, axis=-1, keepdims=True)
  alpha_weights = rendering.weights_from_alpha(1.0 - jnp.exp(-sigma * deltas))
  np.testing.assert_allclose(alpha_weights, weights, rtol=1e-5, atol=1e-7)
  assert edges.shape == (4, 25) and np.all(np.asarray(edges[:, -1]) == 6.0)
  # A fully opaque sample stops the ray there, with finite gradients of the alphas.
  alpha = jnp.zeros((1, 8)).at[0, 3].set(1.0).at[0, 5].set(0.5)
  np.testing.assert_allclose(rendering.weights_from_alpha(alpha)[0], np.eye(8)[3], atol=1e-7)
  grad = jax.grad(lambda a: jnp.sum(rendering.weights_from_alpha(a) * jnp.arange(8.0)))(alpha)
  assert np.all(np.isfinite(grad))


def test_depth_is_the_expected_depth_where_the_ray_ends():
  # Half the opacity at z = 3, the rest of what is left at z = 5: depth is their weighted mean given
  # a hit (not sum(w z), which shrinks with opacity), and far where nothing is hit.
  from nerf_jax import rendering
  z = jnp.array([[3.0, 5.0], [3.0, 5.0]])
  weights = jnp.array([[0.25, 0.25], [0.0, 0.0]])
  out = rendering.composite(weights, jnp.zeros((2, 2, 3)), z, white_bkgd=True,
                            edges=rendering.interval_edges(z, 6.0))
  np.testing.assert_allclose(out.depth, [4.0, 6.0])
  np.testing.assert_allclose(out.disp, [0.5 / 2.0, 0.0])
  np.testing.assert_allclose(out.acc, [0.5, 0.0])


def test_packed_rendering_equals_dense_rendering_of_the_same_samples():
  """The occupancy sampler's training path (packed samples, two stages, the second behind the first
  on each ray) renders what the dense [R, K] block with zero density in the gaps renders, including
  where a density overflows to inf."""
  from nerf_jax import rendering
  rng = np.random.default_rng(0)
  rays, steps, step_size = 6, 16, 0.05
  mask = rng.uniform(size=(rays, steps)) < 0.5
  mask[0] = False  # a ray with no samples
  sigma = np.where(mask, rng.uniform(0, 30, (rays, steps)), 0.0).astype(np.float32)
  sigma[1, np.flatnonzero(mask[1])[:1]] = np.inf
  rgb = rng.uniform(size=(rays, steps, 3)).astype(np.float32)
  directions = rng.normal(size=(rays, 3)).astype(np.float32)
  z = (2.0 + step_size / np.linalg.norm(directions, axis=-1, keepdims=True) * np.arange(steps)).astype(np.float32)
  far = z[:, -1:] + (z[:, 1:2] - z[:, :1])
  dense = volume_render(jnp.asarray(rgb), jnp.asarray(sigma), jnp.asarray(z), jnp.asarray(directions),
                        far=jnp.asarray(far), white_bkgd=True)
  # Stage 1: each ray's first two samples; stage 2 the rest; flat indices ray * K + step, in ray order.
  rank = np.cumsum(mask, axis=1) - 1
  stages = [np.flatnonzero(mask & (rank < 2)), np.flatnonzero(mask & (rank >= 2))]
  optical = np.zeros(rays, np.float32)
  weights, order = [], []
  for index in stages:
    ray = index // steps
    tau = sigma.reshape(-1)[index] * step_size
    weights.append(jax.jit(rendering.weights_from_density_packed)(
        jnp.asarray(sigma.reshape(-1)[index]), jnp.full(index.shape, step_size, jnp.float32), jnp.asarray(ray),
        jnp.asarray(optical[ray])))
    np.add.at(optical, ray, tau)
    order.append(index)
  index = np.concatenate(order)
  weights = jnp.concatenate(weights)
  np.testing.assert_allclose(weights, np.asarray(dense.weights).reshape(-1)[index], atol=1e-6)
  composite = jax.jit(rendering.composite_packed, static_argnames='white_bkgd')
  colour, depth, acc, disp = composite(
      weights, jnp.asarray(rgb.reshape(-1, 3)[index]), jnp.asarray(z.reshape(-1)[index]), jnp.asarray(index // steps),
      far=jnp.asarray(far[:, 0]), white_bkgd=True)
  for packed, full in ((colour, dense.rgb), (depth, dense.depth), (acc, dense.acc), (disp, dense.disp)):
    np.testing.assert_allclose(packed, full, rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(np.asarray(weights)))
