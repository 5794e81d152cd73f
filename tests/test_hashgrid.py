"""Hash encoding against a brute-force per-corner reference; spherical harmonics; the ngp field."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax.fields import hashgrid, ngp, sh


def brute_force_terms(x, layout):
  """Every (point, level, table row, weight) of the encoding, in plain Python integers, per corner."""
  x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
  for i, point in enumerate(x):
    for level, (res, size, offset, dense) in enumerate(zip(layout.resolutions, layout.sizes, layout.offsets,
                                                           layout.dense)):
      scaled = point * res
      cell = np.minimum(np.floor(scaled), res - 1).astype(int)
      frac = scaled - cell
      for corner in itertools.product((0, 1), repeat=layout.dims):
        c = cell + np.array(corner)
        weight = np.prod([f if b else 1 - f for f, b in zip(frac, corner)])
        if dense:
          index = sum(int(c[k]) * (res + 1) ** k for k in range(layout.dims))
        else:
          h = 0
          for k in range(layout.dims):
            h ^= (int(c[k]) * hashgrid.PRIMES[k]) % 2 ** 32
          index = h % size
        yield i, level, offset + index, weight


def brute_force(x, table, layout, g):
  """The encoding float64 [n, L * F] and the gradient of sum(g * encoding) w.r.t. the table."""
  table, g = np.asarray(table, np.float64), np.asarray(g, np.float64).reshape(len(x), -1, table.shape[1])
  out, grad = np.zeros(g.shape), np.zeros(table.shape)
  for i, level, row, weight in brute_force_terms(x, layout):
    out[i, level] += weight * table[row]
    grad[row] += weight * g[i, level]
  return out.reshape(len(x), -1), grad


@pytest.mark.parametrize('dims', [2, 3])
@pytest.mark.parametrize('custom_vjp', [False, True])
def test_encoding_and_gradient_match_brute_force(dims, custom_vjp):
  # table 2^8 rows: the coarse levels fit (direct), the fine ones hash.
  layout = hashgrid.grid_layout(dims, 4, 8, 2, 40)
  assert layout.dense[0] and not layout.dense[-1]
  key_x, key_t, key_g = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.uniform(key_x, (7, dims))
  x = x.at[0].set(1.0).at[1].set(0.0)  # the cube's corners: the last and first cells
  table = jax.random.normal(key_t, (layout.total, 3))
  got = hashgrid.hash_encode(x, table, layout, custom_vjp=custom_vjp)
  g = jax.random.normal(key_g, got.shape)
  expected, expected_grad = brute_force(x, table, layout, g)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  grad = jax.grad(lambda t: jnp.sum(g * hashgrid.hash_encode(x, t, layout, custom_vjp=custom_vjp)))(table)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-5)


def test_fast_forward_trains_bit_for_bit_as_the_earlier_path_and_renders_the_same():
  # encode_fast changes only the forward pass alone (evaluation); a jitted training step, points made
  # from rays as a sampler makes them, must compute exactly what the earlier path computed.
  layout = hashgrid.grid_layout(3, 8, 12, 4, 128)
  keys = jax.random.split(jax.random.PRNGKey(3), 5)
  origins = jax.random.normal(keys[0], (512, 1, 3))
  directions = jax.random.normal(keys[1], (512, 1, 3))
  t = jax.random.uniform(keys[2], (512, 16, 1), minval=0.5, maxval=3.0)
  table = jax.random.normal(keys[3], (layout.total, 4)) * 1e-2
  target = jax.random.normal(keys[4], (512 * 16, 8 * 4))

  def points():
    p = origins + t * directions
    return (p / (1.0 + jnp.linalg.norm(p, axis=-1, keepdims=True)) * 0.5 + 0.5).reshape(-1, 3)

  def loss(table, fast):
    return jnp.mean((hashgrid.hash_encode(points(), table, layout, fast_forward=fast) - target) ** 2)

  for_training = [jax.jit(jax.value_and_grad(loss), static_argnums=1)(table, fast) for fast in (True, False)]
  np.testing.assert_array_equal(for_training[0][0], for_training[1][0])
  np.testing.assert_array_equal(for_training[0][1], for_training[1][1])
  rendered = [jax.jit(loss, static_argnums=1)(table, fast) for fast in (True, False)]
  np.testing.assert_allclose(rendered[0], rendered[1], rtol=1e-6)


def test_collisions_only_where_the_table_is_smaller_than_the_grid():
  layout = hashgrid.grid_layout(3, 3, 10, 4, 16)  # 5^3 and 9^3 vertices fit 2^10 rows; 17^3 do not
  assert layout.resolutions == (4, 8, 16) and layout.dense == (True, True, False)
  # Every vertex of every level, as inputs exactly on them, in one call.
  grids = [np.stack(np.meshgrid(*[np.arange(r + 1) / r] * 3, indexing='ij'), -1).reshape(-1, 3)
           for r in layout.resolutions]
  rows, weights = hashgrid.corner_indices_and_weights(jnp.asarray(np.concatenate(grids), jnp.float32), layout)
  # The row of the corner carrying each input's whole weight, at each level.
  own = np.take_along_axis(np.asarray(rows), np.argmax(np.asarray(weights), -1)[..., None], -1)[..., 0]
  start = 0
  for level, (r, vertices) in enumerate(zip(layout.resolutions, grids)):
    mine = own[start:start + len(vertices), level]
    start += len(vertices)
    assert np.all((mine >= layout.offsets[level]) & (mine < layout.offsets[level] + layout.sizes[level]))
    distinct = len(np.unique(mine))
    if layout.dense[level]:
      assert distinct == (r + 1) ** 3, (level, distinct)  # no two vertices share a row
    else:
      assert layout.sizes[level] == 2 ** 10 and 0.5 * 2 ** 10 < distinct < (r + 1) ** 3, (level, distinct)


def test_layout_follows_the_paper():
  layout = hashgrid.grid_layout(3, 16, 19, 16, 2048)
  assert layout.resolutions[0] == 16 and layout.resolutions[-1] == 2048
  growth = np.asarray(layout.resolutions[1:]) / np.asarray(layout.resolutions[:-1])
  np.testing.assert_allclose(growth, np.exp(np.log(2048 / 16) / 15), rtol=0.05)
  assert max(layout.sizes) == 2 ** 19 and layout.offsets[1] == 17 ** 3


def test_module_initialisation_and_box():
  module = hashgrid.HashEncoding(num_levels=4, features=2, table_log2=10, coarsest=4, finest=32, box=(-2.0, 2.0))
  x = jnp.array([[-2.0, 0.0, 2.0], [5.0, -5.0, 0.0]])
  variables = module.init(jax.random.PRNGKey(0), x)
  table = variables['params']['table']
  assert float(jnp.max(jnp.abs(table))) <= 1e-4 and float(jnp.std(table)) > 1e-5
  out = module.apply(variables, x)
  assert out.shape == (2, 8)
  # Outside the box, clipped onto its surface: the same as the nearest point on it.
  np.testing.assert_allclose(out[1], module.apply(variables, jnp.array([[2.0, -2.0, 0.0]]))[0])


def test_spherical_harmonics_are_orthonormal():
  # Gauss-Legendre in cos(theta) times a uniform grid in phi integrates these polynomials exactly.
  nodes, node_weights = np.polynomial.legendre.leggauss(16)
  phi = np.linspace(0, 2 * np.pi, 32, endpoint=False)
  cos_t, ph = np.meshgrid(nodes, phi, indexing='ij')
  sin_t = np.sqrt(1 - cos_t ** 2)
  d = np.stack([sin_t * np.cos(ph), sin_t * np.sin(ph), cos_t], -1).reshape(-1, 3)
  w = (node_weights[:, None] * np.full_like(ph, 2 * np.pi / len(phi))).reshape(-1)
  y = np.asarray(sh.spherical_harmonics(jnp.asarray(d, jnp.float32), 4), np.float64)
  assert y.shape == (len(d), 16)
  gram = (y * w[:, None]).T @ y
  np.testing.assert_allclose(gram, np.eye(16), atol=1e-5)


def test_trunc_exp_gradient_is_bounded():
  assert float(ngp.trunc_exp(jnp.float32(2.0))) == pytest.approx(np.exp(2.0), rel=1e-6)
  assert float(jax.grad(ngp.trunc_exp)(jnp.float32(2.0))) == pytest.approx(np.exp(2.0), rel=1e-6)
  assert float(jax.grad(ngp.trunc_exp)(jnp.float32(40.0))) == pytest.approx(np.exp(15.0), rel=1e-5)


def test_ngp_field_starts_alive_and_is_empty_outside_its_box():
  field = ngp.NgpField(encoding=hashgrid.HashEncoding(num_levels=4, table_log2=12, coarsest=4, finest=64,
                                                      box=(-1.0, 1.0)),
                       dir_encoding=sh.SphericalHarmonics(4), box=(-1.0, 1.0))
  points = jax.random.uniform(jax.random.PRNGKey(0), (8, 5, 3), minval=-1.2, maxval=1.2)
  viewdirs = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (8, 1))
  variables = jax.jit(field.init)(jax.random.PRNGKey(1), points, viewdirs)
  out = jax.jit(field.apply)(variables, points, viewdirs)
  rgb, sigma = out.rgb, out.density
  assert rgb.shape == (8, 5, 3) and sigma.shape == (8, 5)
  inside = np.all(np.abs(np.asarray(points)) <= 1.0, -1)
  assert np.all(np.asarray(sigma)[~inside] == 0.0)
  # At initialisation the density is ~exp(0) = 1 inside: every ray gets a gradient (no dead start).
  assert np.all(np.asarray(sigma)[inside] > 0.3)
  grads = jax.jit(jax.grad(lambda v: jnp.sum(field.apply(v, points, viewdirs).density)))(variables)
  assert float(jnp.sum(jnp.abs(grads['params']['encoding']['table']))) > 0
