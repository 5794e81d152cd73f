"""Flax modules. Each takes raw coordinates and encodes them itself, so params + inputs say everything."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import rendering, sampling
from nerf_jax.encoding import frequency_encoding
from nerf_jax.tasks import ConfigError


# config.model.dtype -> the dtype of the layers' matrix products (their operands; they accumulate in
# float32). Parameters, gradients, activations between layers, the encoding (sin of 2^9 x needs
# float32's mantissa) and volume rendering stay float32 either way.
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@jax.custom_vjp
def bfloat16_product(x, kernel):
  """x @ kernel from bfloat16 operands, accumulated in and returned as float32.

  x: float32 [..., n]; kernel: float32 [n, m] -> float32 [..., m].
  bfloat16 operands with a float32 result is the form CPUs with AVX-512 BF16 and GPUs' tensor cores
  run at twice the float32 rate (a 4096 x 4096 product on the project's CPU: 344 GFLOP/s, against 179
  in float32 and 170 with a bfloat16 result), and sums over hundreds of inputs keep float32's
  precision. The custom gradient keeps the backward products in that form too: autodiff alone would
  multiply the float32 cotangent by bfloat16 operands, which runs at the slow float32 rate.
  """
  return _bfloat16_product_fwd(x, kernel)[0]


def _bfloat16_product_fwd(x, kernel):
  x16, k16 = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
  return jnp.matmul(x16, k16, preferred_element_type=jnp.float32), (x16, k16)


def _bfloat16_product_bwd(residuals, g):
  x16, k16 = residuals
  g16 = g.astype(jnp.bfloat16)
  dx = jnp.matmul(g16, k16.T, preferred_element_type=jnp.float32)
  # The kernel's gradient sums over every leading axis, in float32.
  axes = tuple(range(x16.ndim - 1))
  dk = jnp.tensordot(x16, g16, axes=(axes, axes), preferred_element_type=jnp.float32)
  return dx, dk


bfloat16_product.defvjp(_bfloat16_product_fwd, _bfloat16_product_bwd)


def _bfloat16_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """nn.Dense's product (lhs's last axis against rhs's first) as bfloat16_product."""
  del precision, preferred_element_type
  assert dimension_numbers == (((lhs.ndim - 1,), (0,)), ((), ())), dimension_numbers
  return bfloat16_product(lhs, rhs)


def dense(features, dtype, **kwargs):
  """nn.Dense whose matrix product runs in `dtype`; parameters, bias and result stay float32."""
  if dtype == jnp.float32:
    return nn.Dense(features, **kwargs)
  return nn.Dense(features, dot_general=_bfloat16_dot_general, **kwargs)


def compute_dtype(name):
  """The jnp dtype for config.model.dtype, or a ConfigError naming the choices."""
  if name not in COMPUTE_DTYPES:
    raise ConfigError(f'model.dtype must be one of {sorted(COMPUTE_DTYPES)}, got {name!r}.')
  return COMPUTE_DTYPES[name]


class ImageMLP(nn.Module):
  """Image fitting: pixel coordinates (u, v) -> RGB.

  width, depth: hidden layer size and count (ReLU); num_freqs: frequencies of the (u, v) encoding;
  dtype: the matrix products' dtype (parameters stay float32).
  """
  width: int = 128
  depth: int = 4
  num_freqs: int = 10
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, uv):
    """uv: float32 [..., 2] in [0, 1] -> rgb: float32 [..., 3] in (0, 1)."""
    x = frequency_encoding(uv, self.num_freqs)
    for _ in range(self.depth):
      x = nn.relu(dense(self.width, self.dtype)(x))
    return nn.sigmoid(dense(3, self.dtype)(x))


def mlp_flops_per_point(in_features, widths):
  """Multiply-add FLOPs (2 per MAC) of one forward pass through dense layers of the given widths."""
  flops, fan_in = 0, in_features
  for width in widths:
    flops += 2 * fan_in * width
    fan_in = width
  return flops


def image_mlp_flops_per_pixel(width, depth, num_freqs):
  """Forward FLOPs of ImageMLP for one pixel (dense layers only; the encoding is negligible)."""
  in_features = 2 * (1 + 2 * num_freqs)
  return mlp_flops_per_point(in_features, [width] * depth + [3])


class NerfMLP(nn.Module):
  """NeRF's MLP: (point, view direction) -> (rgb, density).

  depth x width ReLU trunk on the encoded point, the encoded input concatenated again after layer
  `skip` + 1 (the paper's skip into the fifth layer), density from the trunk, colour from a width_view
  layer that also sees the encoded view direction.
  """
  width: int = 256
  depth: int = 8
  skip: int = 4
  width_view: int = 128
  pos_freqs: int = 10
  dir_freqs: int = 4
  # Density = softplus(raw + density_bias). A ReLU density that starts negative has zero gradient and
  # never recovers (all-zero opacity, a dead network). Softplus is positive with a non-zero gradient
  # everywhere, and at initialisation (raw ~ 0) gives softplus(-1) = 0.31: every ray starts partly
  # opaque, so every sample gets a gradient. (mip-NeRF made the same choice.)
  density_bias: float = -1.0
  dtype: Any = jnp.float32  # the matrix products' dtype; parameters stay float32

  @nn.compact
  def __call__(self, points, viewdirs):
    """points: float32 [..., S, 3]; viewdirs: float32 [..., 3] unit -> rgb [..., S, 3], sigma [..., S].

    Outputs are float32 whatever `dtype` is: transmittance multiplies S terms, too many for bfloat16.
    """
    layer = lambda features, name, **kw: dense(features, self.dtype, name=name, **kw)
    inputs = frequency_encoding(points, self.pos_freqs)
    x = inputs
    for i in range(self.depth):
      x = nn.relu(layer(self.width, f'trunk_{i}')(x))
      if i == self.skip:
        x = jnp.concatenate([inputs, x], axis=-1)
    raw_sigma = layer(1, 'density')(x)[..., 0]
    sigma = nn.softplus(raw_sigma + self.density_bias)
    features = layer(self.width, 'features')(x)
    # Dense(concat(features, dir)) split in two: the direction's half is computed once per ray and
    # broadcast over its samples instead of once per sample (same function, fewer FLOPs).
    directions = frequency_encoding(viewdirs, self.dir_freqs)
    hidden = (layer(self.width_view, 'view_features')(features)
              + layer(self.width_view, 'view_dirs', use_bias=False)(directions)[..., None, :])
    rgb = nn.sigmoid(layer(3, 'rgb')(nn.relu(hidden)))
    return rgb, sigma


class NeRF(nn.Module):
  """Coarse and fine NerfMLPs with stratified then hierarchical sampling and volume rendering.

  __call__(rays, keys) -> (coarse RenderResult, fine RenderResult). keys: one PRNG key per ray, or
  None (deterministic: bin centres and quantiles).
  """
  mlp: dict  # NerfMLP fields, shared by coarse and fine
  num_coarse: int = 64
  num_fine: int = 128
  near: float = 2.0
  far: float = 6.0
  white_bkgd: bool = True

  def setup(self):
    self.coarse = NerfMLP(**self.mlp)
    self.fine = NerfMLP(**self.mlp)

  def __call__(self, rays, keys=None):
    """rays: Rays [...] (each field float32 [..., 3]); keys: uint32 [..., 2] or None.

    A key per ray makes a ray's jitter a property of the ray, not of the batch's shape: any split of
    a batch (devices, microbatches) samples the same depths. Only the sampling is mapped over the rays;
    the networks see the whole batch at once.
    """
    batch_shape = rays.origins.shape[:-1]
    if keys is None:
      z_vals = sampling.stratified_samples(None, self.near, self.far, self.num_coarse, batch_shape)
    else:
      keys = jnp.vectorize(jax.random.split, signature='(k)->(2,k)')(keys)
      coarse_keys, fine_keys = keys[..., 0, :], keys[..., 1, :]
      z_vals = jnp.vectorize(
          lambda key: sampling.stratified_samples(key, self.near, self.far, self.num_coarse, ()),
          signature='(k)->(s)')(coarse_keys)
    coarse = self._render(self.coarse, rays, z_vals)
    if keys is None:
      z_vals = sampling.hierarchical_samples(None, z_vals, coarse.weights, self.num_fine)
    else:
      z_vals = jnp.vectorize(
          lambda key, z, w: sampling.hierarchical_samples(key, z, w, self.num_fine),
          signature='(k),(s),(s)->(f)')(fine_keys, z_vals, coarse.weights)
    return coarse, self._render(self.fine, rays, z_vals)

  def _render(self, mlp, rays, z_vals):
    points = rays.origins[..., None, :] + z_vals[..., :, None] * rays.directions[..., None, :]
    rgb, sigma = mlp(points, rays.viewdirs)
    return rendering.volume_render(rgb, sigma, z_vals, rays.directions, far=self.far,
                                   white_bkgd=self.white_bkgd)


def nerf_mlp_flops_per_sample(width, depth, skip, width_view, pos_freqs):
  """Forward FLOPs of NerfMLP's dense layers for one sample.

  The direction's layer runs once per ray, not per sample, and is left out (under 1% of the total).
  """
  pos = 3 * (1 + 2 * pos_freqs)
  flops, fan_in = 0, pos
  for i in range(depth):
    flops += 2 * fan_in * width
    fan_in = width + (pos if i == skip else 0)
  flops += 2 * fan_in * 1 + 2 * fan_in * width  # density, features
  flops += 2 * width * width_view + 2 * width_view * 3  # view layer, rgb
  return flops


def nerf_flops_per_ray(model_config):
  """Forward FLOPs of NeRF for one ray: the coarse MLP on num_coarse samples, the fine MLP on all."""
  m = model_config
  per_sample = nerf_mlp_flops_per_sample(m.width, m.depth, m.skip, m.width_view, m.num_freqs)
  return per_sample * (2 * m.num_coarse + m.num_fine)
