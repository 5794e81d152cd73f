"""Rays from camera-to-world poses and pinhole intrinsics (pure): the one place rays are made.

Convention (Blender / OpenGL, as in transforms_*.json): a pose is camera-to-world; in camera space the
camera looks down -Z with +X right and +Y up; image rows grow downwards. Intrinsics are
(fx, fy, cx, cy) in pixels, with the top-left pixel's centre at (0.5, 0.5) (COLMAP's convention too).
Rays pass through pixel centres (col + 0.5, row + 0.5), as Blender rendered them; the original NeRF
code used the pixel's corner (col, row), half a pixel off, which JaxNeRF measured as costing about 1 dB.
"""

import jax.numpy as jnp
import numpy as np

from nerf_jax.types import Rays


def centred_intrinsics(focal, height, width):
  """(fx, fy, cx, cy) of a camera with square pixels and the principal point at the image centre
  (Blender's cameras). Returns float32 [4]."""
  return np.array([focal, focal, 0.5 * width, 0.5 * height], np.float32)


def pixel_grid(height, width):
  """Every pixel's (row, col): two int32 [height, width] arrays, rows growing downwards."""
  rows, cols = np.meshgrid(np.arange(height, dtype=np.int32), np.arange(width, dtype=np.int32),
                           indexing='ij')
  return rows, cols


def camera_directions(rows, cols, intrinsics):
  """Camera-space directions through pixel centres, z = -1.

  rows, cols: int or float [...] pixel indices; intrinsics: float32 [..., 4] (fx, fy, cx, cy),
  broadcastable against rows -> float32 [..., 3]
  """
  fx, fy, cx, cy = (intrinsics[..., i] for i in range(4))
  # Times the reciprocal rather than divided: what XLA made of the division by a constant focal length
  # before intrinsics were per-view arrays, so runs from before reproduce bit for bit (the two differ
  # by one ulp in a tenth of the rays, enough for training to take another path).
  x = (cols + 0.5 - cx) * (1.0 / fx)
  y = -(rows + 0.5 - cy) * (1.0 / fy)  # image rows grow downwards, camera +Y points up
  return jnp.stack([x, y, -jnp.ones_like(x)], axis=-1).astype(jnp.float32)


def rays_from_pixels(poses, intrinsics, rows, cols):
  """World-space rays through the given pixels.

  poses: float32 [..., 4, 4] camera-to-world, one per ray (or broadcastable); intrinsics: float32
  [..., 4] (fx, fy, cx, cy), likewise; rows, cols: int [...]
  returns Rays with fields [..., 3]
  """
  cam = camera_directions(rows, cols, intrinsics)
  # camera-to-world: world = R @ cam, so rotate by R (not R^T, which would be world-to-camera).
  directions = jnp.einsum('...ij,...j->...i', poses[..., :3, :3], cam)
  origins = jnp.broadcast_to(poses[..., :3, 3], directions.shape)
  viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  return Rays(origins=origins, directions=directions, viewdirs=viewdirs)


def image_rays(pose, intrinsics, height, width):
  """Rays through every pixel of one view.

  pose: float32 [4, 4]; intrinsics: float32 [4] -> Rays with fields [height, width, 3]
  """
  rows, cols = pixel_grid(height, width)
  return rays_from_pixels(jnp.asarray(pose), jnp.asarray(intrinsics), rows, cols)
