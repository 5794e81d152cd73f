"""The networks the tasks train, as Flax modules: ImageMLP (image fitting) and NeRF (coarse + fine
fields with hierarchical sampling and volume rendering). Fields and encodings are in fields/."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import rendering, sampling
from nerf_jax.fields.layers import dense


class ImageMLP(nn.Module):
  """Image fitting: pixel coordinates (u, v) -> RGB.

  encoding: module mapping float32 [..., 2] to [..., features] (fields.ENCODINGS); width, depth:
  hidden layer size and count (ReLU); dtype: the matrix products' dtype (parameters stay float32).
  """
  encoding: nn.Module
  width: int = 128
  depth: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, uv):
    """uv: float32 [..., 2] in [0, 1] -> rgb: float32 [..., 3] in (0, 1)."""
    x = self.encoding(uv)
    for _ in range(self.depth):
      x = nn.relu(dense(self.width, self.dtype)(x))
    return nn.sigmoid(dense(3, self.dtype)(x))


class NeRF(nn.Module):
  """Coarse and fine fields with stratified then hierarchical sampling and volume rendering.

  coarse, fine: two field modules (fields.build_field), each (points [..., S, 3], viewdirs [..., 3])
  -> (rgb [..., S, 3], sigma [..., S]); with density_noise > 0, training also passes raw_noise
  [..., S], to be added to the density before its activation (fields.mlp.NerfMLP).
  lindisp: coarse samples linear in inverse depth (sampling.stratified_samples).
  __call__(rays, keys) -> (coarse RenderResult, fine RenderResult). keys: one PRNG key per ray, or
  None (deterministic: bin centres and quantiles).
  """
  coarse: nn.Module
  fine: nn.Module
  num_coarse: int = 64
  num_fine: int = 128
  near: float = 2.0
  far: float = 6.0
  white_bkgd: bool = True
  lindisp: bool = False
  density_noise: float = 0.0

  def __call__(self, rays, keys=None):
    """rays: Rays [...] (each field float32 [..., 3]); keys: uint32 [..., 2] or None.

    A key per ray makes a ray's jitter a property of the ray, not of the batch's shape: any split of
    a batch (devices, microbatches) samples the same depths. Only the sampling is mapped over the rays;
    the networks see the whole batch at once.
    """
    batch_shape = rays.origins.shape[:-1]
    stratified = lambda key, shape: sampling.stratified_samples(
        key, self.near, self.far, self.num_coarse, shape, lindisp=self.lindisp)
    ray_keys = keys
    if keys is None:
      z_vals = stratified(None, batch_shape)
    else:
      keys = jnp.vectorize(jax.random.split, signature='(k)->(2,k)')(keys)
      coarse_keys, fine_keys = keys[..., 0, :], keys[..., 1, :]
      z_vals = jnp.vectorize(lambda key: stratified(key, ()), signature='(k)->(s)')(coarse_keys)
    coarse = self._render(self.coarse, rays, z_vals, self._noise(ray_keys, 1, z_vals.shape))
    if keys is None:
      z_vals = sampling.hierarchical_samples(None, z_vals, coarse.weights, self.num_fine)
    else:
      z_vals = jnp.vectorize(
          lambda key, z, w: sampling.hierarchical_samples(key, z, w, self.num_fine),
          signature='(k),(s),(s)->(f)')(fine_keys, z_vals, coarse.weights)
    return coarse, self._render(self.fine, rays, z_vals, self._noise(ray_keys, 2, z_vals.shape))

  def _noise(self, ray_keys, stream, shape):
    """Gaussian noise for the raw densities, float32 `shape` [..., S], or None (evaluation, or
    density_noise 0). Drawn from the ray's key folded with `stream`, so runs without noise keep their
    random numbers."""
    if ray_keys is None or self.density_noise <= 0:
      return None
    draw = lambda key: jax.random.normal(jax.random.fold_in(key, stream), shape[-1:])
    return self.density_noise * jnp.vectorize(draw, signature='(k)->(s)')(ray_keys)

  def _render(self, field, rays, z_vals, raw_noise=None):
    points = rays.origins[..., None, :] + z_vals[..., :, None] * rays.directions[..., None, :]
    # raw_noise only where there is some: a field without the argument works until density_noise > 0.
    rgb, sigma = field(points, rays.viewdirs) if raw_noise is None else field(points, rays.viewdirs, raw_noise)
    return rendering.volume_render(rgb, sigma, z_vals, rays.directions, far=self.far,
                                   white_bkgd=self.white_bkgd)
