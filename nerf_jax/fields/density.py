"""A density-only field: a small hash grid and a one-hidden-layer MLP, no colour. What a proposal
sampler (samplers.proposal, mip-NeRF 360's and nerfacto's) queries to decide where the shown field
samples: it only has to know roughly where the matter is, so it is a fraction of the field's cost."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from nerf_jax.fields.layers import Dense
from nerf_jax.fields.ngp import density_head
from nerf_jax.types import FieldOutput


class DensityField(nn.Module):
  """points float32 [..., S, 3] -> FieldOutput(density float32 [..., S]): ngp.density_head (NgpField's
  density, Dense(width) -> ReLU -> Dense(1)) on the encoded point.

  encoding: the position encoding (a fields.hashgrid.HashEncoding); box: (lo, hi), the cube the points
  must lie in (density 0 outside, as NgpField).
  """
  encoding: nn.Module
  width: int = 16
  box: tuple = (-2.0, 2.0)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, points, viewdirs=None, cond=None):
    """points: float32 [..., S, 3]; viewdirs, cond: ignored (a density has no view dependence)."""
    del viewdirs, cond
    layer = lambda features, name: Dense(features, self.dtype, name=name)
    density, _ = density_head(layer, self.encoding(points), points, self.box, self.width, 1, prefix='')
    return FieldOutput(density=density)
