import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax.cameras import pinhole
from nerf_jax.errors import ConfigError
from nerf_jax.fields import layers
from nerf_jax.fields.frequency import FrequencyEncoding
from nerf_jax.fields.mlp import NerfMLP
from nerf_jax.samplers.hierarchical import HierarchicalSampler

SMALL = dict(width=32, depth=4, skip=2, width_view=16)


def _mlp(dtype=jnp.float32, **kw):
  return NerfMLP(encoding=FrequencyEncoding(6), dir_encoding=FrequencyEncoding(2), dtype=dtype,
                 **{**SMALL, **kw})


def _nerf(dtype=jnp.float32):
  return HierarchicalSampler(coarse=_mlp(dtype), fine=_mlp(dtype), num_coarse=16, num_fine=16)


def _rays(n=64):
  pose = jnp.asarray(pinhole.look_at_pose([0.0, -4.0, 1.0]), jnp.float32)
  rays = pinhole.image_rays(pose, pinhole.centred_intrinsics(6.0, 8, n // 8), 8, n // 8)
  return jax.tree_util.tree_map(lambda x: x.reshape(-1, 3), rays)


def test_fresh_model_is_not_dead():
  # The dead-density pitfall: a freshly initialised model must give every ray some opacity and
  # every density parameter a gradient, or training never starts.
  model = _nerf()
  rays = _rays()
  # Jitted: op by op, init and the passes below took 14 s (the pitfall check runs this test twice).
  params = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  coarse, fine = jax.jit(model.apply)(params, rays).values()
  assert float(jnp.min(coarse.acc)) > 0.05 and float(jnp.min(fine.acc)) > 0.05

  @jax.jit
  def grads_of(p):
    def loss(p, which):
      renders = model.apply(p, rays, jax.random.split(jax.random.PRNGKey(1), 64))
      return jnp.mean((renders[which].rgb - 0.5) ** 2)
    return {which: jax.grad(loss)(p, which)['params'] for which in ('coarse', 'fine')}

  grads = grads_of(params)
  for which in ('coarse', 'fine'):
    assert float(jnp.abs(grads[which][which]['density']['kernel']).max()) > 0
    assert float(jnp.abs(grads[which][which]['trunk_0']['kernel']).max()) > 0
  # The fine loss does not reach the coarse network: no gradient through the sample positions.
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree_util.tree_leaves(grads['fine']['coarse']))


def test_paper_architecture_shapes():
  # width 256, depth 8, skip after the fifth layer, view branch 128, 10 and 4 frequencies
  mlp = NerfMLP(encoding=FrequencyEncoding(10), dir_encoding=FrequencyEncoding(4))
  points = jnp.zeros((2, 5, 3))
  params = jax.jit(mlp.init)(jax.random.PRNGKey(0), points, jnp.zeros((2, 3)))['params']
  assert params['trunk_0']['kernel'].shape == (63, 256)
  assert params['trunk_5']['kernel'].shape == (256 + 63, 256)  # the skip feeds the sixth layer
  assert params['view_dirs']['kernel'].shape == (27, 128)
  out = jax.jit(mlp.apply)({'params': params}, points, jnp.zeros((2, 3)))
  rgb, sigma = out.rgb, out.density
  assert rgb.shape == (2, 5, 3) and sigma.shape == (2, 5) and np.all(np.asarray(sigma) > 0)


def test_split_view_layer_equals_the_concatenated_layer():
  mlp = _mlp()
  points = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 3))
  dirs = jax.random.normal(jax.random.PRNGKey(1), (3, 3))
  dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
  p = jax.jit(mlp.init)(jax.random.PRNGKey(2), points, dirs)['params']
  rgb = jax.jit(mlp.apply)({'params': p}, points, dirs).rgb
  # Recompute the colour branch as Dense(concat(features, encoded direction)).
  from nerf_jax.encoding import frequency_encoding
  _, inter = jax.jit(lambda p: mlp.apply({'params': p}, points, dirs, capture_intermediates=True,
                                         mutable=['intermediates']))(p)
  features = layers.features_last(inter['intermediates']['features']['__call__'][0], (3, 4))
  enc = jnp.broadcast_to(frequency_encoding(dirs, 2)[:, None], (3, 4, 15))
  kernel = jnp.concatenate([p['view_features']['kernel'], p['view_dirs']['kernel']], axis=0)
  hidden = jax.nn.relu(jnp.concatenate([features, enc], -1) @ kernel + p['view_features']['bias'])
  expected = jax.nn.sigmoid(hidden @ p['rgb']['kernel'] + p['rgb']['bias'])
  np.testing.assert_allclose(rgb, expected, atol=1e-5)


def test_bfloat16_products_keep_float32_params_outputs_and_gradients():
  rays = _rays()
  results = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = _nerf(dtype)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), rays)  # same key: the same float32 parameters
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    fine = jax.jit(model.apply)(params, rays)['fine']
    assert fine.rgb.dtype == jnp.float32 and fine.depth.dtype == jnp.float32
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    loss = lambda p: jnp.mean((model.apply(p, rays, keys)['fine'].rgb - 0.5) ** 2)
    grads = jax.jit(jax.grad(loss))(params)
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g)))
               for g in jax.tree_util.tree_leaves(grads))
    hlo = jax.jit(model.apply).lower(params, rays).as_text()
    assert ('bf16' in hlo) == (dtype == jnp.bfloat16)  # the products really are in bfloat16
    results[dtype] = fine.rgb, grads
  # bfloat16 keeps 8 bits of mantissa: the colours agree to a few thousandths, not to float32's 1e-6.
  difference = float(jnp.abs(results[jnp.float32][0] - results[jnp.bfloat16][0]).max())
  assert 0 < difference < 2e-2, difference
  # The custom backward pass computes the same gradients, to bfloat16's precision.
  for g32, g16 in zip(*(jax.tree_util.tree_leaves(results[d][1]) for d in (jnp.float32, jnp.bfloat16))):
    scale = float(jnp.abs(g32).max()) + 1e-12
    assert float(jnp.abs(g32 - g16).max()) < 0.05 * scale


def test_bfloat16_product_runs_forward_and_backward_in_bfloat16():
  # Every product of the forward and the backward pass takes bfloat16 operands and gives float32:
  # the form with hardware support. (Autodiff alone would multiply a float32 cotangent by bfloat16.)
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 20))
  kernel = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
  f = lambda k, x: jnp.sum(jnp.sin(layers.product(k, x, jnp.bfloat16)))
  jaxpr = jax.make_jaxpr(jax.grad(f, argnums=(0, 1)))(kernel, x)
  dots = [e for e in jaxpr.eqns if e.primitive.name == 'dot_general']
  assert len(dots) == 3
  for e in dots:
    assert [v.aval.dtype for v in e.invars] == [jnp.bfloat16] * 2 and e.outvars[0].aval.dtype == jnp.float32
  dk, dx = jax.grad(f, argnums=(0, 1))(kernel, x)
  ek, ex = jax.grad(lambda k, x: jnp.sum(jnp.sin(k.T @ x)), argnums=(0, 1))(kernel, x)
  np.testing.assert_allclose(dx, ex, atol=0.05 * float(jnp.abs(ex).max()))
  np.testing.assert_allclose(dk, ek, atol=0.05 * float(jnp.abs(ek).max()))


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_every_big_product_contracts_its_left_operands_last_axis(dtype):
  # XLA's CPU runtime runs a product whose left operand contracts its first axis as a generic dot, at
  # half the rate of its fast kernels (in bfloat16 it refuses it), and folds transposes into products,
  # so the layout has to hold in the compiled step, not just in our code: a lego_cpu-sized field's
  # gradient, compiled, has no such product of a [>1, >1] result (layers.Dense, features-first).
  if jax.default_backend() != 'cpu':
    pytest.skip("XLA's CPU products only: other backends compile products to library calls")
  mlp = NerfMLP(encoding=FrequencyEncoding(10), dir_encoding=FrequencyEncoding(4), width=128, depth=4,
                skip=2, width_view=64, dtype=dtype)
  points = jax.random.normal(jax.random.PRNGKey(0), (32, 96, 3))
  dirs = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (32, 1))
  params = jax.jit(mlp.init)(jax.random.PRNGKey(1), points, dirs)
  loss = lambda p: sum(jnp.sum(jnp.sin(out)) for out in jax.tree_util.tree_leaves(mlp.apply(p, points, dirs)))
  hlo = jax.jit(jax.grad(loss)).lower(params).compile().as_text()
  dots = re.findall(r'= \w+\[(\d+),(\d+)\]\S* dot\(.*lhs_contracting_dims=\{(\d)\}', hlo)
  assert len(dots) >= 20, 'no products found: has the HLO text changed?'
  slow = [d for d in dots if d[2] == '0' and int(d[0]) > 1 and int(d[1]) > 1]
  assert not slow, slow


def test_a_rays_samples_depend_only_on_its_own_key():
  # One key per ray: rendering a batch, or each half of it, gives every ray the same result.
  model = _nerf()
  rays = _rays()
  params = jax.jit(model.init)(jax.random.PRNGKey(0), rays)
  apply = jax.jit(model.apply)
  keys = jax.random.split(jax.random.PRNGKey(3), 64)
  whole = apply(params, rays, keys)['fine']
  half = lambda tree, s: jax.tree_util.tree_map(lambda x: x[s], tree)
  parts = [apply(params, half(rays, s), keys[s])['fine'] for s in (slice(0, 32), slice(32, 64))]
  np.testing.assert_allclose(np.concatenate([p.rgb for p in parts]), whole.rgb, atol=1e-6)
  np.testing.assert_allclose(np.concatenate([p.depth for p in parts]), whole.depth, atol=1e-5)
  # ... and the jitter is real: other keys, other depths.
  other = apply(params, rays, jax.random.split(jax.random.PRNGKey(4), 64))['fine']
  assert float(jnp.abs(other.depth - whole.depth).max()) > 1e-3


def test_unknown_dtype_is_a_config_error():
  with pytest.raises(ConfigError, match="model.dtype must be one of \\['bfloat16', 'float32', 'auto'\\]"):
    layers.compute_dtype('float16')
