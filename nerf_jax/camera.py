"""Rays from camera-to-world poses (pure).

Convention (Blender / OpenGL, as in transforms_*.json): a pose is camera-to-world; in camera space the
camera looks down -Z with +X right and +Y up; image rows grow downwards. Rays pass through pixel
centres (col + 0.5, row + 0.5), as Blender rendered them; the original NeRF code used the pixel's
corner (col, row), half a pixel off, which JaxNeRF measured as costing about 1 dB.
"""

import jax.numpy as jnp

from nerf_jax.types import Rays


def camera_directions(rows, cols, height, width, focal):
  """Camera-space directions through pixel centres, z = -1.

  rows, cols: int or float [...] pixel indices -> float32 [..., 3]
  """
  x = (cols + 0.5 - 0.5 * width) / focal
  y = -(rows + 0.5 - 0.5 * height) / focal
  return jnp.stack([x, y, -jnp.ones_like(x)], axis=-1).astype(jnp.float32)


def rays_from_pixels(poses, rows, cols, height, width, focal):
  """World-space rays through the given pixels.

  poses: float32 [..., 4, 4] camera-to-world, one per ray (or broadcastable); rows, cols: int [...]
  returns Rays with fields [..., 3]
  """
  cam = camera_directions(rows, cols, height, width, focal)
  # camera-to-world: world = R @ cam, so rotate by R (not R^T, which would be world-to-camera).
  directions = jnp.einsum('...ij,...j->...i', poses[..., :3, :3], cam)
  origins = jnp.broadcast_to(poses[..., :3, 3], directions.shape)
  viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  return Rays(origins=origins, directions=directions, viewdirs=viewdirs)


def image_rays(pose, height, width, focal):
  """Rays through every pixel of one view. pose: float32 [4, 4] -> Rays with fields [height, width, 3]."""
  rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing='ij')
  return rays_from_pixels(pose, rows, cols, height, width, focal)
