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


def rays_from_pixels(poses, intrinsics, rows, cols, camera=None):
  """World-space rays through the given pixels.

  poses: float32 [..., 4, 4] camera-to-world, one per ray (or broadcastable); intrinsics: float32
  [..., 4] (fx, fy, cx, cy), likewise; rows, cols: int [...]; camera: int [...] (broadcastable) each
  ray's training camera (types.Rays.camera), or None
  returns Rays with fields [..., 3] (camera [..., 1])
  """
  cam = camera_directions(rows, cols, intrinsics)
  # camera-to-world: world = R @ cam, so rotate by R (not R^T, which would be world-to-camera).
  directions = jnp.einsum('...ij,...j->...i', poses[..., :3, :3], cam)
  origins = jnp.broadcast_to(poses[..., :3, 3], directions.shape)
  viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  if camera is not None:
    camera = jnp.broadcast_to(jnp.asarray(camera, jnp.int32), directions.shape[:-1])[..., None]
  return Rays(origins=origins, directions=directions, viewdirs=viewdirs, camera=camera)


def image_rays(pose, intrinsics, height, width, camera=None):
  """Rays through every pixel of one view.

  pose: float32 [4, 4]; intrinsics: float32 [4]; camera: the view's training camera index or None
  -> Rays with fields [height, width, 3]
  """
  rows, cols = pixel_grid(height, width)
  return rays_from_pixels(jnp.asarray(pose), jnp.asarray(intrinsics), rows, cols, camera)


def ndc_rays(rays, intrinsics, near=1.0):
  """Rays of a forward-facing scene in normalised device coordinates (NeRF's LLFF setting).

  The camera's frustum from the plane z = -near out to infinity becomes the cube [-1, 1]^3: a world point
  (x, y, z) (in a frame whose -Z looks into the scene, as LLFF's recentred poses give) maps to
  (-ax x / z, -ay y / z, 1 + 2 near / z) with ax = fx / cx, ay = fy / cy (2 f / W and 2 f / H for a
  centred camera). Each ray starts where it crosses z = -near and depths t in [0, 1) along the returned
  directions cover it out to infinity, so samples uniform in t are uniform in disparity. viewdirs stay
  the world's unit directions: the colour branch sees real view directions.

  rays: Rays [...] in world coordinates; intrinsics: float32 [..., 4] (fx, fy, cx, cy), broadcastable
  returns Rays [...] with NDC origins and directions (not unit length)
  """
  o, d = rays.origins, rays.directions
  # Slide each origin along its ray onto the near plane, so t = 0 is the near plane.
  t = -(near + o[..., 2]) / d[..., 2]
  o = o + t[..., None] * d
  ax = intrinsics[..., 0] / intrinsics[..., 2]
  ay = intrinsics[..., 1] / intrinsics[..., 3]
  ox, oy, oz = o[..., 0], o[..., 1], o[..., 2]
  dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
  origins = jnp.stack([-ax * ox / oz, -ay * oy / oz, 1.0 + 2.0 * near / oz], axis=-1)
  directions = jnp.stack([-ax * (dx / dz - ox / oz), -ay * (dy / dz - oy / oz), -2.0 * near / oz], axis=-1)
  return rays.replace(origins=origins, directions=directions)  # viewdirs and conditioning as they were


def world_from_ndc(points, intrinsics, near=1.0):
  """The inverse of ndc_rays' mapping for points: NDC (x', y', z') with z' < 1 -> world (x, y, z).

  points: float [..., 3]; intrinsics: float [..., 4] (fx, fy, cx, cy), broadcastable -> float [..., 3]
  """
  z = 2.0 * near / (points[..., 2] - 1.0)
  x = -points[..., 0] * z * intrinsics[..., 2] / intrinsics[..., 0]
  y = -points[..., 1] * z * intrinsics[..., 3] / intrinsics[..., 1]
  return np.stack([x, y, z], axis=-1)


def look_at_pose(position, target=(0.0, 0.0, 0.0), world_up=(0.0, 0.0, 1.0)):
  """Camera-to-world matrix of a camera at `position` looking at `target` (numpy).

  Returns float64 [4, 4]. Columns 0..2 are the camera's right (+X), up (+Y) and back (+Z) axes in world
  coordinates (OpenGL/Blender: the camera looks down its -Z); column 3 is its centre.
  """
  position = np.asarray(position, np.float64)
  forward = np.asarray(target, np.float64) - position
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, world_up)
  right /= np.linalg.norm(right)
  up = np.cross(right, forward)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, position
  return pose


def look_at_centre(poses):
  """The point nearest (least squares) to every camera's optical axis, and each camera's angle to it.

  poses: float [N, 4, 4] camera-to-world (cameras look down -Z). Returns (centre float64 [3], angles in
  degrees float64 [N] between each camera's viewing direction and the direction to the centre).
  """
  centres = poses[:, :3, 3].astype(np.float64)
  forward = -poses[:, :3, 2].astype(np.float64)
  forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
  projectors = np.eye(3) - forward[:, :, None] * forward[:, None, :]  # onto each axis' normal plane
  centre = np.linalg.lstsq(projectors.sum(0), np.einsum('nij,nj->i', projectors, centres), rcond=None)[0]
  to_centre = centre - centres
  to_centre /= np.maximum(np.linalg.norm(to_centre, axis=-1, keepdims=True), 1e-12)
  angles = np.degrees(np.arccos(np.clip(np.sum(forward * to_centre, -1), -1.0, 1.0)))
  return centre, angles


def angles_from_mean_direction(poses):
  """Each camera's angle between its viewing direction (-Z) and the cameras' mean one: small for every
  camera of a forward-facing rig, wide for cameras around an object.

  poses: float [N, 4, 4] camera-to-world -> float64 [N] degrees
  """
  forward = -poses[:, :3, 2].astype(np.float64)
  forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
  mean = forward.sum(0) / max(np.linalg.norm(forward.sum(0)), 1e-12)
  return np.degrees(np.arccos(np.clip(forward @ mean, -1.0, 1.0)))
