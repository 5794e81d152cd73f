"""The browser's camera and nerf_jax's: pose conversion, frame sizes, intrinsics, letterboxing (numpy).

viser's cameras follow OpenCV (x right, y down, looking down +z); nerf_jax's follow OpenGL
(docs/conventions.md). Nothing here needs viser.
"""

import numpy as np

from nerf_jax.cameras import pinhole, rotations

_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_pose(wxyz, position):
  """Camera-to-world float64 [4, 4] in OpenGL axes, of a viser camera (OpenCV axes) at `position`
  float [3] rotated by the unit quaternion `wxyz` float [4]."""
  pose = np.eye(4)
  pose[:3, :3] = rotations.qvec_to_rotmat(wxyz)  # viser's wxyz: a Hamilton quaternion, as COLMAP's
  pose[:3, 3] = position
  return pose @ _FLIP_YZ


def viser_pose(pose):
  """(wxyz float [4], position float [3]) of an OpenGL camera-to-world pose float [4, 4] (opengl_pose's
  inverse)."""
  pose = np.asarray(pose, np.float64) @ _FLIP_YZ
  return rotations.rotmat_to_qvec(pose[:3, :3]), pose[:3, 3]


def frame_size(long_side, aspect):
  """(height, width) of a frame whose longer side is `long_side` px, width / height ~ `aspect`."""
  if aspect >= 1.0:
    return max(1, round(long_side / aspect)), long_side
  return long_side, max(1, round(long_side * aspect))


def intrinsics_for(fov, height, width):
  """(fx, fy, cx, cy) float32 [4] of a centred camera with vertical field of view `fov` (radians)."""
  return pinhole.centred_intrinsics(0.5 * height / np.tan(0.5 * fov), height, width)


def letterbox(image, aspect):
  """image uint8 [H, W, 3] centred on white to width / height = aspect (the browser stretches a
  background image over its whole canvas): uint8 [H', W', 3]."""
  height, width = image.shape[:2]
  if width / height < aspect:
    pad = int(round(height * aspect)) - width
    return np.pad(image, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=255)
  pad = int(round(width / aspect)) - height
  return np.pad(image, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=255)
