"""instant-NGP's field: a hash-grid encoding, a one-hidden-layer density MLP, a two-hidden-layer colour MLP."""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import config_rules
from nerf_jax.fields.layers import Dense, colour_mlp, compute_dtype, features_first
from nerf_jax.types import FieldOutput

KEYS = {'model.geo_features': (15, "'ngp' field: features from the density MLP to the colour MLP")}


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.geo_features', 1, integer=True)
  return problems


@jax.custom_vjp
def trunc_exp(x):
  """exp(x) whose gradient uses exp(min(x, 15)): instant-NGP's density activation (float32 [...])."""
  return jnp.exp(x)


def _trunc_exp_fwd(x):
  return jnp.exp(x), x


def _trunc_exp_bwd(x, g):
  # A density spike (exp of a large raw value) would otherwise give a huge gradient and one bad step.
  return (g * jnp.exp(jnp.minimum(x, 15.0)),)


trunc_exp.defvjp(_trunc_exp_fwd, _trunc_exp_bwd)


def density_head(layer, encoded, points, box, width, outputs, prefix, raw_noise=None):
  """instant-NGP's density from encoded points, inside a compact module (NgpField's, and DensityField's
  for proposal sampling): Dense(width) -> ReLU -> Dense(outputs), trunc_exp of the first output plus
  raw_noise, 0 outside `box`, where the grid does not reach.

  layer(features, name): the module's Dense maker; encoded: float32 [..., S, F]; points: float32
  [..., S, 3]; box: (lo, hi); prefix: of the two layers' names ('<prefix>hidden', '<prefix>out');
  raw_noise: float32 [..., S] or None -> (density float32 [..., S], the second layer's outputs
  [outputs, ...] in layers.Dense's features-first layout).
  """
  h = nn.relu(layer(width, f'{prefix}hidden')(features_first(encoded)))  # layers.Dense's layout
  h = layer(outputs, f'{prefix}out')(h)
  raw = h[0].reshape(encoded.shape[:-1])
  if raw_noise is not None:
    raw = raw + raw_noise
  lo, hi = box
  inside = jnp.all((points >= lo) & (points <= hi), axis=-1)
  return jnp.where(inside, trunc_exp(raw), 0.0), h


class NgpField(nn.Module):
  """(point, view direction) -> (rgb, density), as instant-NGP builds it.

  density: trunc_exp of the first output of Dense(width) -> ReLU -> Dense(1 + geo_features) on the
  encoded point. The exponential, not softplus: a small MLP on grid features must reach densities of
  thousands at a surface and ~0 in free space, a range exp covers linearly in its input, and its
  gradient is the density itself, never exactly 0, so the density cannot die as a ReLU one does.
  colour: sigmoid of a colour MLP (colour_depth hidden layers of width) on the density MLP's whole
  output and the encoded view direction. Points outside `box` (on any axis) get density 0: the grid
  covers the box only. conditioning: as NerfMLP's (a per-ray input of the colour MLP), or None.
  """
  encoding: nn.Module
  dir_encoding: nn.Module
  width: int = 64
  geo_features: int = 15
  colour_depth: int = 2
  box: tuple = (-1.5, 1.5)
  dtype: Any = jnp.float32
  conditioning: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, points, viewdirs, cond=None, raw_noise=None):
    """points: float32 [..., S, 3]; viewdirs: float32 [..., 3] unit; cond: types.Conditioning [...] or
    None; raw_noise: float32 [..., S] or None -> FieldOutput(rgb [..., S, 3], density [..., S])."""
    layer = lambda features, name, **kw: Dense(features, self.dtype, name=name, **kw)
    encoded = self.encoding(points)
    lead = encoded.shape[:-1]  # [..., S]
    sigma, h = density_head(layer, encoded, points, self.box, self.width, 1 + self.geo_features, 'density_',
                            raw_noise)
    rgb = colour_mlp(layer, h, self.dir_encoding(viewdirs), self.conditioning, cond, self.width,
                     self.colour_depth, lead)
    return FieldOutput(rgb=rgb, density=sigma)


def build(model_config, encoding, dir_encoding, scene=None, conditioning=None):
  """model.width (both MLPs), model.depth (the colour MLP's hidden layers), model.geo_features, model.box."""
  del scene
  m = model_config
  return NgpField(encoding=encoding, dir_encoding=dir_encoding, width=m.width, geo_features=m.geo_features,
                  colour_depth=m.depth, box=tuple(m.box), dtype=compute_dtype(m.dtype),
                  conditioning=conditioning)
