"""NeRF's sampler: stratified samples for a coarse field, then more where its weights are, for a fine one."""

import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import config_rules, rendering, sampling
from nerf_jax.errors import ConfigError
from nerf_jax.samplers.base import Sampler
from nerf_jax.types import Conditioning

KEYS = {
    'model.num_coarse': (64, "'hierarchical' sampler: stratified samples per ray (coarse field)"),
    'model.num_fine': (128, "'hierarchical' sampler: extra samples from the coarse weights (the fine field "
                            "sees both)"),
    # NeRF's LLFF scenes: 1.0, against floaters. Evaluation never adds it.
    'model.density_noise': (0.0, "'hierarchical' sampler: standard deviation of Gaussian noise added to "
                                 "the raw density while training; 0: none"),
}


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.num_coarse', 3, integer=True)  # inner bins to resample
  config_rules.in_range(problems, config, 'model.num_fine', 1, integer=True)
  config_rules.in_range(problems, config, 'model.density_noise', 0)
  return problems


class HierarchicalSampler(Sampler):
  """Coarse and fine fields with stratified then hierarchical sampling and volume rendering.

  coarse, fine: two fields (fields.build_field) -> FieldOutput(rgb [..., S, 3], density [..., S]); with
  density_noise > 0, training also passes raw_noise [..., S], to be added to the density before its
  activation (fields.mlp.NerfMLP). lindisp: coarse samples linear in inverse depth
  (sampling.stratified_samples). Renders 'coarse' and 'fine', both in the photometric loss.
  """
  RENDERS = ('coarse', 'fine')
  coarse: nn.Module = None
  fine: nn.Module = None
  num_coarse: int = 64
  num_fine: int = 128
  near: float = 2.0
  far: float = 6.0
  white_bkgd: bool = True
  lindisp: bool = False
  density_noise: float = 0.0

  @classmethod
  def build(cls, data_config, model_config, near, far, make_field):
    m = model_config
    coarse, fine = make_field(), make_field()
    if m.density_noise > 0 and 'raw_noise' not in inspect.signature(type(coarse).__call__).parameters:
      # Found here, not as a TypeError inside the jitted training step.
      raise ConfigError(f'model.density_noise={m.density_noise} but the field {m.field!r} '
                        f'({type(coarse).__name__}) takes no raw_noise argument: set model.density_noise=0, '
                        f'or give its __call__ a raw_noise=None argument added to its raw density.')
    return cls(coarse=coarse, fine=fine, num_coarse=m.num_coarse, num_fine=m.num_fine, near=near, far=far,
               white_bkgd=data_config.white_bkgd, lindisp=data_config.lindisp, density_noise=m.density_noise)

  def __call__(self, rays, keys=None, background=None):
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
    coarse = self._render(self.coarse, rays, z_vals, self._noise(ray_keys, 1, z_vals.shape), background)
    if keys is None:
      z_vals = sampling.hierarchical_samples(None, z_vals, coarse.weights, self.num_fine)
    else:
      z_vals = jnp.vectorize(
          lambda key, z, w: sampling.hierarchical_samples(key, z, w, self.num_fine),
          signature='(k),(s),(s)->(f)')(fine_keys, z_vals, coarse.weights)
    fine = self._render(self.fine, rays, z_vals, self._noise(ray_keys, 2, z_vals.shape), background)
    return {'coarse': coarse, 'fine': fine}

  def field(self, points, viewdirs, cond=None):
    return self.fine(points, viewdirs, cond)

  def _noise(self, ray_keys, stream, shape):
    """Gaussian noise for the raw densities, float32 `shape` [..., S], or None (evaluation, or
    density_noise 0). Drawn from the ray's key folded with `stream`, so runs without noise keep their
    random numbers."""
    if ray_keys is None or self.density_noise <= 0:
      return None
    draw = lambda key: jax.random.normal(jax.random.fold_in(key, stream), shape[-1:])
    return self.density_noise * jnp.vectorize(draw, signature='(k)->(s)')(ray_keys)

  def _render(self, field, rays, z_vals, raw_noise=None, background=None):
    points = sampling.points_along(rays, z_vals)
    cond = Conditioning.of(rays)
    # raw_noise only where there is some: a field without the argument works until density_noise > 0.
    out = field(points, rays.viewdirs, cond) if raw_noise is None else field(points, rays.viewdirs, cond,
                                                                             raw_noise=raw_noise)
    return rendering.volume_render(out.rgb, out.density, z_vals, rays.directions, far=self.far,
                                   white_bkgd=self.white_bkgd, background=background, extras=out.extras)
