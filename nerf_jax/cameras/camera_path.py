"""Camera paths as JSON files: what --mode render renders, and writes back so it can be edited.

  {"fps": 20, "height": 100, "width": 100,
   "frames": [{"transform_matrix": [[...4 x 4, camera-to-world, OpenGL axes...]],
               "intrinsics": [fx, fy, cx, cy]}, ...]}

Poses follow the dataset convention (docs/conventions.md): camera-to-world, the camera looking down -Z,
+Y up; intrinsics in pixels of a height x width frame, the top-left pixel's centre at (0.5, 0.5).
"""

import dataclasses
import json
import os

import numpy as np

from nerf_jax.cameras import rotations
from nerf_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CameraPath:
  """poses: float32 [F, 4, 4] camera-to-world; intrinsics: float32 [F, 4]; one frame size; fps; name:
  what the rendered files are called ('orbit', 'spiral', or the path file's name)."""
  poses: np.ndarray
  intrinsics: np.ndarray
  height: int
  width: int
  fps: float
  name: str = 'path'


def write(path, camera_path):
  """Writes `camera_path` as JSON (see the module docstring); returns the path."""
  c = camera_path
  frames = [{'transform_matrix': np.asarray(p, np.float64).tolist(), 'intrinsics': np.asarray(k).tolist()}
            for p, k in zip(c.poses, c.intrinsics)]
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'w') as f:
    json.dump({'fps': c.fps, 'height': c.height, 'width': c.width, 'frames': frames}, f, indent=1)
  return path


def read(path):
  """The CameraPath in a JSON file, or a ConfigError naming the file and what is wrong with it."""
  def fail(why):
    raise ConfigError(f'Camera path {path!r} (render.camera_path): {why}. The format is in '
                      f'docs/conventions.md; --mode render writes one to start from.')
  try:
    with open(path) as f:
      data = json.load(f)
  except OSError as e:
    fail(f'cannot be read ({e.strerror})')
  except json.JSONDecodeError as e:
    fail(f'is not valid JSON ({e})')
  if not isinstance(data, dict) or not isinstance(data.get('frames'), list) or not data['frames']:
    fail('needs a non-empty "frames" list')
  for key in ('fps', 'height', 'width'):
    if not isinstance(data.get(key), (int, float)) or data[key] <= 0:
      fail(f'needs a positive "{key}"')
  poses, intrinsics = [], []
  for i, frame in enumerate(data['frames']):
    try:
      pose = np.asarray(frame['transform_matrix'], np.float32)
      k = np.asarray(frame['intrinsics'], np.float32)
    except (KeyError, TypeError, ValueError):
      fail(f'frame {i} needs "transform_matrix" (4 x 4) and "intrinsics" ([fx, fy, cx, cy])')
    if pose.shape != (4, 4) or k.shape != (4,) or not (np.all(np.isfinite(pose)) and np.all(np.isfinite(k))):
      fail(f'frame {i} needs a finite 4 x 4 "transform_matrix" and 4 finite "intrinsics"')
    poses.append(pose)
    intrinsics.append(k)
  return CameraPath(np.stack(poses), np.stack(intrinsics), int(data['height']), int(data['width']),
                    float(data['fps']), name=os.path.splitext(os.path.basename(path))[0])


def interpolate(keyframes, num_frames):
  """`num_frames` poses through the keyframes in order, evenly spaced in keyframe time: centres along
  straight lines, rotations along great arcs (quaternion slerp), the first and last frames exactly the
  first and last keyframes (the viewer's camera-path panel).

  keyframes: float [K, 4, 4] camera-to-world, K >= 1 -> float32 [num_frames, 4, 4]
  """
  keyframes = np.asarray(keyframes, np.float64)
  if len(keyframes) == 1 or num_frames == 1:
    return np.repeat(keyframes[:1], num_frames, axis=0).astype(np.float32)
  quats = [rotations.rotmat_to_qvec(k[:3, :3]) for k in keyframes]
  poses = []
  for u in np.linspace(0.0, len(keyframes) - 1, num_frames):
    i = min(int(u), len(keyframes) - 2)
    f = u - i
    q0, q1 = quats[i], quats[i + 1]
    if np.dot(q0, q1) < 0:  # the shorter of the two arcs between the same rotations
      q1 = -q1
    angle = np.arccos(np.clip(np.dot(q0, q1), -1.0, 1.0))
    q = q0 if angle < 1e-8 else (np.sin((1 - f) * angle) * q0 + np.sin(f * angle) * q1) / np.sin(angle)
    pose = np.eye(4)
    pose[:3, :3] = rotations.qvec_to_rotmat(q)
    pose[:3, 3] = (1 - f) * keyframes[i, :3, 3] + f * keyframes[i + 1, :3, 3]
    poses.append(pose)
  return np.stack(poses).astype(np.float32)
