"""Pytrees passed between the pure NeRF functions."""

from typing import Optional

import flax
import jax

NO_CAMERA = -1  # Rays.camera of a ray from no training camera (a held-out view, a rendered path)


@flax.struct.dataclass
class Rays:
  """A batch of rays; every field has the same leading shape [...].

  origins: float32 [..., 3] camera centres in world coordinates
  directions: float32 [..., 3] through the pixel, z = -1 in camera space (not unit length), so a
    sample's z_val is its depth along the camera's axis
  viewdirs: float32 [..., 3] directions / |directions|, what the MLP's colour branch sees
  camera: int32 [..., 1], the per-ray conditioning: the index of the ray's camera in the training split
    (what a per-image appearance code or pose delta is looked up by), NO_CAMERA for a ray of any other
    camera; or None where nothing asks (older callers)
  time: float32 [..., 1] or None: room for a dynamic scene's time, carried to the field as `camera` is
  """
  origins: jax.Array
  directions: jax.Array
  viewdirs: jax.Array
  camera: Optional[jax.Array] = None
  time: Optional[jax.Array] = None


@flax.struct.dataclass
class Conditioning:
  """What a field may know of a ray beyond its geometry (nerfstudio's RayBundle metadata), one per ray.

  camera: int32 [...] the training camera's index or NO_CAMERA; time: float32 [...] or None.
  Built from Rays by `of(rays)`; a field that ignores it works unchanged.
  """
  camera: Optional[jax.Array] = None
  time: Optional[jax.Array] = None

  @classmethod
  def of(cls, rays):
    squeeze = lambda x: None if x is None else x[..., 0]
    return cls(camera=squeeze(rays.camera), time=squeeze(rays.time))


@flax.struct.dataclass
class FieldOutput:
  """What a field returns for samples [..., S] of rays [...].

  rgb: float32 [..., S, 3] in [0, 1]; density: float32 [..., S] >= 0 (sigma, per world unit), or None
  for a field that gives alphas; extras: {name: array} anything else a sampler or a loss term uses (an
  SDF and its gradient, a proposal's density), by name.
  """
  rgb: Optional[jax.Array] = None
  density: Optional[jax.Array] = None
  extras: dict = flax.struct.field(default_factory=dict)


@flax.struct.dataclass
class RenderResult:
  """What volume rendering gives per ray.

  rgb: float32 [..., 3]; acc: float32 [...] accumulated opacity; depth: float32 [...] the expected z_val
  where the ray ends, given that it ends in the samples (sum(w z) / acc; the far bound where acc is 0);
  disp: float32 [...] acc / sum(w z) = 1 / depth (NeRF's), 0 where nothing was hit;
  weights: float32 [..., S]; z_vals: float32 [..., S] the samples; edges: float32 [..., S + 1] the intervals the samples stand for
  (sample i for [edges_i, edges_i+1]), for interval losses (distortion); complete: bool [...] where a
  sampler with a fixed budget (samplers.occupancy) queried every sample the ray needed, else None (all rays
  are); extras: {name: array [..., ...]} what the sampler or field adds per ray or per sample (proposal
  weights, an SDF's gradients), for loss terms.
  """
  rgb: jax.Array
  depth: jax.Array
  acc: jax.Array
  disp: jax.Array
  weights: jax.Array
  z_vals: jax.Array
  edges: Optional[jax.Array] = None
  complete: Optional[jax.Array] = None
  extras: dict = flax.struct.field(default_factory=dict)
