"""NeRF's MLP field: (point, view direction, conditioning) -> (rgb, density), on any encodings."""

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from nerf_jax import config_rules
from nerf_jax.fields.layers import (Dense, add_per_ray, compute_dtype, features_first, features_last,
                                    per_ray_inputs)
from nerf_jax.types import FieldOutput

KEYS = {
    'model.skip': (4, "'mlp' field: the encoded point is concatenated again after trunk layer skip + 1"),
    'model.width_view': (128, "'mlp' field: the view-dependent colour layer's width"),
}


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.width_view', 1, integer=True)
  config_rules.in_range(problems, config, 'model.skip', 0, integer=True)
  return problems


class NerfMLP(nn.Module):
  """depth x width ReLU trunk on the encoded point, the encoded input concatenated again after layer
  `skip` + 1 (the paper's skip into the fifth layer), density from the trunk, colour from a width_view
  layer that also sees the encoded view direction.

  encoding, dir_encoding: modules mapping float32 [..., 3] to float32 [..., features] (fields.ENCODINGS).
  conditioning: None, or a module mapping the rays' types.Conditioning [...] to float32 [..., F], a
  per-ray input of the colour branch beside the encoded direction (a per-image appearance code:
  fields.appearance, given by fields.build_field where model.appearance_features > 0). Without it the
  parameters are NeRF's.
  """
  encoding: nn.Module
  dir_encoding: nn.Module
  width: int = 256
  depth: int = 8
  skip: int = 4
  width_view: int = 128
  # Density = softplus(raw + density_bias). A ReLU density that starts negative has zero gradient and
  # never recovers (all-zero opacity, a dead network). Softplus is positive with a non-zero gradient
  # everywhere, and at initialisation (raw ~ 0) gives softplus(-1) = 0.31: every ray starts partly
  # opaque, so every sample gets a gradient. (mip-NeRF made the same choice.)
  density_bias: float = -1.0
  dtype: Any = jnp.float32  # the matrix products' dtype; parameters stay float32
  conditioning: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, points, viewdirs, cond=None, raw_noise=None):
    """points: float32 [..., S, 3]; viewdirs: float32 [..., 3] unit; cond: types.Conditioning [...] or
    None; raw_noise: float32 [..., S] added to the raw density before its activation, or None ->
    FieldOutput(rgb [..., S, 3], density [..., S]).

    Outputs are float32 whatever `dtype` is: transmittance multiplies S terms, too many for bfloat16.
    """
    layer = lambda features, name, **kw: Dense(features, self.dtype, name=name, **kw)
    encoded = self.encoding(points)
    lead = encoded.shape[:-1]  # [..., S]
    inputs = features_first(encoded)  # [features, points]: layers.Dense's layout
    x = inputs
    for i in range(self.depth):
      x = nn.relu(layer(self.width, f'trunk_{i}')(x))
      if i == self.skip:
        x = jnp.concatenate([inputs, x], axis=0)
    raw_sigma = layer(1, 'density')(x)[0].reshape(lead)
    if raw_noise is not None:
      raw_sigma = raw_sigma + raw_noise
    sigma = nn.softplus(raw_sigma + self.density_bias)
    features = layer(self.width, 'features')(x)
    # Dense(concat(features, dir)) split in two: the direction's half is computed once per ray and
    # broadcast over its samples instead of once per sample (same function, fewer FLOPs).
    directions = per_ray_inputs(self.dir_encoding(viewdirs), self.conditioning, cond)  # [features, rays]
    directions = layer(self.width_view, 'view_dirs', use_bias=False)(directions)
    hidden = add_per_ray(layer(self.width_view, 'view_features')(features), directions)
    rgb = features_last(nn.sigmoid(layer(3, 'rgb')(nn.relu(hidden))), lead)
    return FieldOutput(rgb=rgb, density=sigma)


def build(model_config, encoding, dir_encoding, scene=None, conditioning=None):
  """model.width, depth, skip, width_view, dtype; `scene` (fields.FieldScene) is not needed."""
  del scene
  m = model_config
  return NerfMLP(encoding=encoding, dir_encoding=dir_encoding, width=m.width, depth=m.depth, skip=m.skip,
                 width_view=m.width_view, dtype=compute_dtype(m.dtype), conditioning=conditioning)
