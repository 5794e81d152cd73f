"""SceneSplit: what every dataset format gives the tasks, whatever it read."""

import dataclasses
from typing import Optional

import numpy as np

from nerf_jax.errors import DatasetError

# How the cameras face the scene, for the checks and camera paths that depend on it:
# 'inward': around an object, looking at a common centre (Blender, most COLMAP captures);
# 'forward': a forward-facing capture, cameras roughly parallel (LLFF).
LAYOUTS = ('inward', 'forward')
# The image files every format and nerf_jax.sfm read (imageio decodes them all), lower case.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
# Poses stored as float32 text (Blender's JSON) are orthonormal to ~1e-6; a scaled or sheared one is off
# by far more.
ROTATION_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class SceneSplit:
  """One split of a scene, images already composited and resized.

  images: float32 [num_views, height, width, 3] in [0, 1]
  poses: float32 [num_views, 4, 4] camera-to-world, camera looking down -Z (OpenGL)
  intrinsics: float32 [num_views, 4] (fx, fy, cx, cy) in pixels at this resolution, one row per view
    (the same row repeated for a single camera); camera.centred_intrinsics for a centred pinhole
  names: a name per view (file names)
  alphas: float32 [num_views, height, width] in [0, 1], or None where the format has no alpha
  near, far: float32 [num_views] depth bounds per view where the format gives them, else None
  layout: 'inward' or 'forward' (LAYOUTS)
  """
  images: np.ndarray
  poses: np.ndarray
  intrinsics: np.ndarray
  names: tuple
  alphas: Optional[np.ndarray] = None
  near: Optional[np.ndarray] = None
  far: Optional[np.ndarray] = None
  layout: str = 'inward'

  def __post_init__(self):
    n = len(self.images)
    shapes = {'poses': (n, 4, 4), 'intrinsics': (n, 4)}
    for field, shape in shapes.items():
      if np.shape(getattr(self, field)) != shape:
        raise ValueError(f'SceneSplit.{field} has shape {np.shape(getattr(self, field))}, expected {shape}.')
    if len(self.names) != n or self.layout not in LAYOUTS:
      raise ValueError(f'SceneSplit needs one name per view ({len(self.names)} for {n}) and a layout '
                       f'in {LAYOUTS} (got {self.layout!r}).')

  @property
  def height(self):
    return self.images.shape[1]

  @property
  def width(self):
    return self.images.shape[2]


def check_split(scene, where):
  """Raises DatasetError naming the frame (and `where`, the split's source) unless every pose is a
  finite camera-to-world rigid transform and every intrinsic a finite positive focal length.

  A NaN pose would otherwise surface as a NaN loss steps later, blamed on the learning rate; a rotation
  that is not orthonormal (a scale, a shear, a flipped axis) bends every ray of its view.
  """
  for i, (name, pose, k) in enumerate(zip(scene.names, scene.poses, scene.intrinsics)):
    frame = f'{where}: frame {i} ({name})'
    if not np.all(np.isfinite(pose)):
      raise DatasetError(f'{frame} has a pose with NaN or Inf entries: {np.asarray(pose).tolist()}. Fix or '
                         f'drop that frame.')
    rotation = pose[:3, :3].astype(np.float64)
    error = float(np.max(np.abs(rotation.T @ rotation - np.eye(3))))
    if error > ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
      raise DatasetError(f'{frame}: the pose\'s rotation is not orthonormal with determinant +1 (largest '
                         f'|R^T R - I| entry {error:.2g}, det {np.linalg.det(rotation):.3g}). Poses must be '
                         f'rigid camera-to-world transforms: no scale, shear or mirrored axis.')
    if not np.allclose(pose[3], [0, 0, 0, 1], atol=ROTATION_TOLERANCE):
      raise DatasetError(f'{frame}: the pose\'s last row is {pose[3].tolist()}, not [0, 0, 0, 1].')
    if not (np.all(np.isfinite(k)) and k[0] > 0 and k[1] > 0):
      raise DatasetError(f'{frame} has intrinsics (fx, fy, cx, cy) = {k.tolist()}; the focal lengths '
                         f'must be finite and positive.')
