"""Pytrees passed between the pure NeRF functions."""

from typing import Optional

import flax
import jax


@flax.struct.dataclass
class Rays:
  """A batch of rays; every field has the same leading shape [...].

  origins: float32 [..., 3] camera centres in world coordinates
  directions: float32 [..., 3] through the pixel, z = -1 in camera space (not unit length), so a
    sample's z_val is its depth along the camera's axis
  viewdirs: float32 [..., 3] directions / |directions|, what the MLP's colour branch sees
  """
  origins: jax.Array
  directions: jax.Array
  viewdirs: jax.Array


@flax.struct.dataclass
class RenderResult:
  """What volume rendering gives per ray.

  rgb: float32 [..., 3]; depth: float32 [...] (expected z_val); acc: float32 [...] accumulated opacity;
  disp: float32 [...] acc / depth, 0 where nothing was hit; weights: float32 [..., num_samples];
  z_vals: float32 [..., num_samples]; complete: bool [...] where a sampler with a fixed budget
  (models.OccupancyNeRF) queried every sample the ray needed, else None (all rays are)
  """
  rgb: jax.Array
  depth: jax.Array
  acc: jax.Array
  disp: jax.Array
  weights: jax.Array
  z_vals: jax.Array
  complete: Optional[jax.Array] = None
