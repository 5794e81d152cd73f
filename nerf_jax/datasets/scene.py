"""SceneSplit: what every dataset format gives the tasks, whatever it read."""

import dataclasses
from typing import Optional

import numpy as np

# How the cameras face the scene, for the checks and camera paths that depend on it:
# 'inward': around an object, looking at a common centre (Blender, most COLMAP captures);
# 'forward': a forward-facing capture, cameras roughly parallel (LLFF).
LAYOUTS = ('inward', 'forward')


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
