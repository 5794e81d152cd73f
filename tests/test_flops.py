import jax
import jax.numpy as jnp
import pytest

from nerf_jax import flops
from tests.test_models import _nerf, _rays


def test_counts_products_inside_jit_scan_and_custom_gradients():
  a, b = jnp.ones((4, 3)), jnp.ones((3, 5))
  assert flops.product_flops(lambda x, y: x @ y, a, b) == 2 * 4 * 3 * 5
  assert flops.product_flops(jax.jit(lambda x, y: jnp.sin(x @ y) @ y.T), a, b) == 2 * 4 * 3 * 5 * 2
  scanned = lambda x, y: jax.lax.scan(lambda c, _: (c @ y @ y.T, None), x, None, length=7)[0]
  assert flops.product_flops(scanned, a, b) == 7 * 2 * (2 * 4 * 3 * 5)
  from nerf_jax.fields.layers import product
  assert flops.product_flops(lambda k, x: product(k, x, jnp.bfloat16), a.T, b) == 2 * 4 * 3 * 5
  assert flops.product_flops(lambda x: jnp.exp(x) + 1, a) == 0


def test_nerf_flops_match_the_layer_formula():
  # NerfMLP of tests/test_models.py: width 32, depth 4, skip after layer 3, view branch 16, 6 position
  # and 2 direction frequencies; 16 coarse samples, and the fine field on 16 + 16.
  model, rays = _nerf(), _rays(8)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  pos, dirs, width, view = 3 * (1 + 2 * 6), 3 * (1 + 2 * 2), 32, 16
  per_sample, fan_in = 0, pos
  for i in range(4):
    per_sample += 2 * fan_in * width
    fan_in = width + (pos if i == 2 else 0)
  per_sample += 2 * fan_in * (1 + width) + 2 * width * view + 2 * view * 3
  per_ray = per_sample * (16 + 32) + 2 * (2 * dirs * view)  # the direction layer: once per ray, twice
  assert flops.product_flops(model.apply, params, rays) / 8 == pytest.approx(per_ray)
