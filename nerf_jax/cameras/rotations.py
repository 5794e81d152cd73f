"""Rotations as unit Hamilton quaternions (w, x, y, z) and back (numpy): COLMAP's images, the camera
paths' interpolation and the viewer's cameras all speak them."""

import numpy as np


def qvec_to_rotmat(qvec):
  """Rotation matrix of a Hamilton quaternion (w, x, y, z), normalised first. float [4] -> float64 [3, 3]."""
  w, x, y, z = np.asarray(qvec, np.float64) / np.linalg.norm(qvec)
  return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                   [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                   [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def rotmat_to_qvec(rotation):
  """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix. float [3, 3] -> float64 [4].

  Solves for the largest of |w|, |x|, |y|, |z| first (Shepperd's method): taking w from the trace alone
  loses every digit near a half-turn, where w is ~0.
  """
  r = np.asarray(rotation, np.float64)
  trace = np.trace(r)
  largest = int(np.argmax([trace, r[0, 0], r[1, 1], r[2, 2]]))
  if largest == 0:
    w = 0.5 * np.sqrt(1.0 + trace)
    q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
  elif largest == 1:
    x = 0.5 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
    q = [(r[2, 1] - r[1, 2]) / (4 * x), x, (r[0, 1] + r[1, 0]) / (4 * x), (r[0, 2] + r[2, 0]) / (4 * x)]
  elif largest == 2:
    y = 0.5 * np.sqrt(1.0 - r[0, 0] + r[1, 1] - r[2, 2])
    q = [(r[0, 2] - r[2, 0]) / (4 * y), (r[0, 1] + r[1, 0]) / (4 * y), y, (r[1, 2] + r[2, 1]) / (4 * y)]
  else:
    z = 0.5 * np.sqrt(1.0 - r[0, 0] - r[1, 1] + r[2, 2])
    q = [(r[1, 0] - r[0, 1]) / (4 * z), (r[0, 2] + r[2, 0]) / (4 * z), (r[1, 2] + r[2, 1]) / (4 * z), z]
  q = np.asarray(q) / np.linalg.norm(q)
  return -q if q[0] < 0 else q
