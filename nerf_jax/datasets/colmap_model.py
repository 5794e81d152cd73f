"""COLMAP sparse models (cameras, images, points3D) read and written in COLMAP's own formats (numpy only).

A model is a folder holding cameras, images and points3D, all .bin or all .txt (COLMAP prefers .bin
when both are there, and so does read_model). Newer COLMAP also writes rigs and frames files; their
cameras and images files are unchanged, so those are not needed here. Binary files are little-endian:

  cameras.bin   uint64 count, then per camera: int32 camera_id, int32 model_id, uint64 width,
                uint64 height, float64 params[number of the model's parameters]
  images.bin    uint64 count, then per image: int32 image_id, float64 qw, qx, qy, qz, float64 tx, ty, tz,
                int32 camera_id, the name's bytes and a NUL, uint64 num_points2D, then per 2-D point:
                float64 x, float64 y, int64 point3D_id (-1: the keypoint observes no 3-D point)
  points3D.bin  uint64 count, then per point: uint64 point3D_id, float64 x, y, z, uint8 r, g, b,
                float64 error, uint64 track_length, then per observation: int32 image_id, int32 point2D_idx

The text files hold the same fields, one line per camera / point and two per image (the second: the
2-D points as x y point3D_id triples, possibly empty); lines starting with '#' are comments.

An image's (qvec, tvec) maps world to camera: x_cam = R(qvec) @ x_world + tvec, with the camera's axes
OpenCV's (x right, y down, z forward) and qvec a Hamilton unit quaternion (w, x, y, z). Pixel
coordinates put the top-left pixel's centre at (0.5, 0.5).
"""

import collections
import dataclasses
import os
import struct

import numpy as np

from nerf_jax.cameras.rotations import qvec_to_rotmat
from nerf_jax.errors import DatasetError

CameraModel = collections.namedtuple('CameraModel', ['id', 'name', 'num_params', 'params'])

# Every COLMAP camera model (src/colmap/sensor/models), so a model is named in messages whatever it is.
CAMERA_MODELS = (
    CameraModel(0, 'SIMPLE_PINHOLE', 3, 'f, cx, cy'),
    CameraModel(1, 'PINHOLE', 4, 'fx, fy, cx, cy'),
    CameraModel(2, 'SIMPLE_RADIAL', 4, 'f, cx, cy, k'),
    CameraModel(3, 'RADIAL', 5, 'f, cx, cy, k1, k2'),
    CameraModel(4, 'OPENCV', 8, 'fx, fy, cx, cy, k1, k2, p1, p2'),
    CameraModel(5, 'OPENCV_FISHEYE', 8, 'fx, fy, cx, cy, k1, k2, k3, k4'),
    CameraModel(6, 'FULL_OPENCV', 12, 'fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6'),
    CameraModel(7, 'FOV', 5, 'fx, fy, cx, cy, omega'),
    CameraModel(8, 'SIMPLE_RADIAL_FISHEYE', 4, 'f, cx, cy, k'),
    CameraModel(9, 'RADIAL_FISHEYE', 5, 'f, cx, cy, k1, k2'),
    CameraModel(10, 'THIN_PRISM_FISHEYE', 12, 'fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, sx1, sy1'),
    CameraModel(11, 'RAD_TAN_THIN_PRISM_FISHEYE', 16,
                'fx, fy, cx, cy, k0, k1, k2, k3, k4, k5, p0, p1, s0, s1, s2, s3'),
    CameraModel(12, 'SIMPLE_DIVISION', 4, 'f, cx, cy, k'),
    CameraModel(13, 'DIVISION', 5, 'fx, fy, cx, cy, k'),
    CameraModel(14, 'SIMPLE_FISHEYE', 3, 'f, cx, cy'),
    CameraModel(15, 'FISHEYE', 4, 'fx, fy, cx, cy'),
    CameraModel(16, 'EUCM', 6, 'fx, fy, cx, cy, alpha, beta'),
    CameraModel(17, 'EQUIRECTANGULAR', 2, 'w, h'),
)
MODELS_BY_ID = {m.id: m for m in CAMERA_MODELS}
MODELS_BY_NAME = {m.name: m for m in CAMERA_MODELS}
FILES = ('cameras', 'images', 'points3D')
FIX = ('Re-export the model (colmap model_converter --input_path ... --output_path ... '
       '--output_type BIN) or re-run mapping.')


@dataclasses.dataclass
class Camera:
  """id, model (a name in MODELS_BY_NAME), width and height in pixels, params: float64 [num_params]."""
  id: int
  model: str
  width: int
  height: int
  params: np.ndarray


@dataclasses.dataclass
class Image:
  """A registered image: qvec float64 [4] (w, x, y, z) and tvec float64 [3] (world-to-camera), the id of
  its camera, its name (a path relative to the images folder), its keypoints xys float64 [K, 2] and
  the 3-D point each observes, point3D_ids int64 [K] (-1: none)."""
  id: int
  qvec: np.ndarray
  tvec: np.ndarray
  camera_id: int
  name: str
  xys: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2)))
  point3D_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))

  def rotation(self):
    """The world-to-camera rotation R(qvec): float64 [3, 3]."""
    return qvec_to_rotmat(self.qvec)


@dataclasses.dataclass
class Point3D:
  """xyz float64 [3], rgb uint8 [3], error (mean reprojection error, pixels), track int64 [L, 2]: the
  (image_id, point2D_idx) pairs that observe it."""
  id: int
  xyz: np.ndarray
  rgb: np.ndarray
  error: float
  track: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.int64))


@dataclasses.dataclass
class Model:
  """{id: Camera}, {id: Image}, {id: Point3D}."""
  cameras: dict
  images: dict
  points3D: dict


def _fail(message):
  raise DatasetError(message)


# ---------------------------------------------------------------------------------------------------
# Binary


class _Bytes:
  """A cursor over a binary file's bytes; running past the end is a DatasetError naming the file."""

  def __init__(self, path):
    self.path = path
    with open(path, 'rb') as f:
      self.data = f.read()
    self.at = 0

  def need(self, size, what):
    if self.at + size > len(self.data):
      _fail(f'{self.path!r} is truncated: it ends at byte {len(self.data)}, inside {what}. {FIX}')

  def read(self, fmt, what):
    size = struct.calcsize('<' + fmt)
    self.need(size, what)
    values = struct.unpack_from('<' + fmt, self.data, self.at)
    self.at += size
    return values

  def array(self, dtype, count, what):
    dtype = np.dtype(dtype)
    self.need(dtype.itemsize * count, what)
    values = np.frombuffer(self.data, dtype, count, self.at)
    self.at += dtype.itemsize * count
    return values

  def count(self, record_size, what):
    """The leading uint64 record count, checked against the bytes there are (a garbled count would
    otherwise allocate or loop for ever)."""
    (n,) = self.read('Q', f'the number of {what}')
    if n * record_size > len(self.data) - self.at:
      _fail(f'{self.path!r} says it holds {n} {what}, more than its {len(self.data)} bytes can: it is '
            f'truncated or not a COLMAP {os.path.basename(self.path)}. {FIX}')
    return n

  def done(self):
    if self.at != len(self.data):
      _fail(f'{self.path!r} has {len(self.data) - self.at} bytes left over after its last record: it is '
            f'garbled or not a COLMAP {os.path.basename(self.path)}. {FIX}')


def read_cameras_binary(path):
  f = _Bytes(path)
  cameras = {}
  for i in range(f.count(24, 'cameras')):
    camera_id, model_id, width, height = f.read('iiQQ', f'camera {i}')
    if model_id not in MODELS_BY_ID:
      _fail(f'{path!r}: camera {camera_id} has model id {model_id}, not a COLMAP camera model '
            f'(0..{max(MODELS_BY_ID)}): the file is garbled or from a newer COLMAP. {FIX}')
    model = MODELS_BY_ID[model_id]
    params = f.array('<f8', model.num_params, f'camera {camera_id}\'s parameters').astype(np.float64)
    cameras[camera_id] = Camera(camera_id, model.name, width, height, params)
  f.done()
  return cameras


def read_images_binary(path):
  f = _Bytes(path)
  images = {}
  point_dtype = np.dtype([('x', '<f8'), ('y', '<f8'), ('id', '<i8')])
  for i in range(f.count(64, 'images')):
    image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = f.read('idddddddi', f'image {i}')
    end = f.data.find(b'\x00', f.at)
    if end < 0:
      _fail(f'{path!r} is truncated: image {image_id}\'s name has no end. {FIX}')
    try:
      name = f.data[f.at:end].decode('utf-8')
    except UnicodeDecodeError:
      _fail(f'{path!r}: image {image_id}\'s name is not text: the file is garbled. {FIX}')
    f.at = end + 1
    (num_points,) = f.read('Q', f'image {image_id}\'s number of 2-D points')
    points = f.array(point_dtype, num_points, f'image {image_id}\'s 2-D points')
    images[image_id] = Image(image_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), camera_id,
                             name, np.stack([points['x'], points['y']], -1).astype(np.float64),
                             points['id'].astype(np.int64))
  f.done()
  return images


def read_points3D_binary(path):
  f = _Bytes(path)
  points = {}
  for i in range(f.count(51, '3-D points')):
    point_id, x, y, z, r, g, b, error, length = f.read('QdddBBBdQ', f'3-D point {i}')
    track = f.array('<i4', 2 * length, f'3-D point {point_id}\'s track').reshape(-1, 2).astype(np.int64)
    points[point_id] = Point3D(point_id, np.array([x, y, z]), np.array([r, g, b], np.uint8), error, track)
  f.done()
  return points


def write_cameras_binary(cameras, path):
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(cameras)))
    for camera in cameras.values():
      model = MODELS_BY_NAME[camera.model]
      params = np.asarray(camera.params, '<f8')
      if params.shape != (model.num_params,):
        raise ValueError(f'Camera {camera.id} ({model.name}) needs {model.num_params} parameters '
                         f'({model.params}), has {params.size}.')
      f.write(struct.pack('<iiQQ', camera.id, model.id, camera.width, camera.height))
      f.write(params.tobytes())


def write_images_binary(images, path):
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(images)))
    for image in images.values():
      f.write(struct.pack('<i4d3di', image.id, *np.asarray(image.qvec, float), *np.asarray(image.tvec, float),
                          image.camera_id))
      f.write(image.name.encode('utf-8') + b'\x00')
      xys = np.asarray(image.xys, np.float64).reshape(-1, 2)
      points = np.zeros(len(xys), [('x', '<f8'), ('y', '<f8'), ('id', '<i8')])
      points['x'], points['y'], points['id'] = xys[:, 0], xys[:, 1], image.point3D_ids
      f.write(struct.pack('<Q', len(points)) + points.tobytes())


def write_points3D_binary(points, path):
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(points)))
    for point in points.values():
      track = np.asarray(point.track, '<i4').reshape(-1, 2)
      f.write(struct.pack('<Q3d3BdQ', point.id, *np.asarray(point.xyz, float), *np.asarray(point.rgb),
                          point.error, len(track)))
      f.write(track.tobytes())


# ---------------------------------------------------------------------------------------------------
# Text


def _data_lines(path):
  """(line number, text) of every line that is not a comment, blank lines kept (images.txt's second
  line of an image without keypoints is blank)."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  return [(n + 1, line.strip()) for n, line in enumerate(lines) if not line.lstrip().startswith('#')]


def _parse(path, number, parse):
  try:
    return parse()
  except (ValueError, IndexError, KeyError, TypeError) as e:
    _fail(f'{path!r} line {number} cannot be parsed ({type(e).__name__}: {e}); the file is truncated or '
          f'garbled. {FIX}')


def read_cameras_text(path):
  cameras = {}
  for number, line in _data_lines(path):
    if not line:
      continue

    def parse():
      fields = line.split()
      model = MODELS_BY_NAME[fields[1]]
      if len(fields) != 4 + model.num_params:
        raise ValueError(f'{model.name} has {model.num_params} parameters ({model.params}), the line has '
                         f'{len(fields) - 4}')
      return Camera(int(fields[0]), model.name, int(fields[2]), int(fields[3]),
                    np.array([float(v) for v in fields[4:]]))
    camera = _parse(path, number, parse)
    cameras[camera.id] = camera
  return cameras


def read_images_text(path):
  images = {}
  lines = _data_lines(path)
  while lines and not lines[-1][1]:
    lines.pop()  # blank lines at the end: a newline too many, or the last image's empty keypoints
  for start in range(0, len(lines), 2):
    number, line = lines[start]
    points_line = lines[start + 1][1] if start + 1 < len(lines) else ''

    def parse():
      fields = line.split()
      if len(fields) < 10:
        raise ValueError(f'an image line has 10 fields (IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, '
                         f'NAME), this one {len(fields)}')
      values = points_line.split()
      if len(values) % 3:
        raise ValueError(f'the next line\'s 2-D points are (X, Y, POINT3D_ID) triples, it has {len(values)} '
                         f'values')
      xys = np.array([float(v) for v in values[0::3]] + [float(v) for v in values[1::3]]).reshape(2, -1).T
      return Image(int(fields[0]), np.array([float(v) for v in fields[1:5]]),
                   np.array([float(v) for v in fields[5:8]]), int(fields[8]), ' '.join(fields[9:]),
                   xys.astype(np.float64), np.array([int(v) for v in values[2::3]], np.int64))
    image = _parse(path, number, parse)
    images[image.id] = image
  return images


def read_points3D_text(path):
  points = {}
  for number, line in _data_lines(path):
    if not line:
      continue

    def parse():
      fields = line.split()
      if len(fields) < 8 or (len(fields) - 8) % 2:
        raise ValueError('a point is POINT3D_ID, X, Y, Z, R, G, B, ERROR and (IMAGE_ID, POINT2D_IDX) pairs')
      return Point3D(int(fields[0]), np.array([float(v) for v in fields[1:4]]),
                     np.array([int(v) for v in fields[4:7]], np.uint8), float(fields[7]),
                     np.array([int(v) for v in fields[8:]], np.int64).reshape(-1, 2))
    point = _parse(path, number, parse)
    points[point.id] = point
  return points


def _number(value):
  """A float as text that reads back to the same float64 (repr is the shortest such)."""
  return repr(float(value))


def write_cameras_text(cameras, path):
  lines = ['# Camera list with one line of data per camera:', '#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]',
           f'# Number of cameras: {len(cameras)}']
  for c in cameras.values():
    lines.append(' '.join([str(c.id), c.model, str(c.width), str(c.height)] + [_number(p) for p in c.params]))
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')


def write_images_text(images, path):
  observations = [np.sum(np.asarray(i.point3D_ids) >= 0) for i in images.values()]
  lines = ['# Image list with two lines of data per image:',
           '#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME', '#   POINTS2D[] as (X, Y, POINT3D_ID)',
           f'# Number of images: {len(images)}, mean observations per image: '
           f'{np.mean(observations) if observations else 0}']
  for i in images.values():
    lines.append(' '.join([str(i.id)] + [_number(v) for v in (*i.qvec, *i.tvec)] + [str(i.camera_id), i.name]))
    lines.append(' '.join(f'{_number(x)} {_number(y)} {int(p)}'
                          for (x, y), p in zip(np.asarray(i.xys).reshape(-1, 2), i.point3D_ids)))
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')


def write_points3D_text(points, path):
  lengths = [len(p.track) for p in points.values()]
  lines = ['# 3D point list with one line of data per point:',
           '#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)',
           f'# Number of points: {len(points)}, mean track length: {np.mean(lengths) if lengths else 0}']
  for p in points.values():
    lines.append(' '.join([str(p.id)] + [_number(v) for v in p.xyz] + [str(int(v)) for v in p.rgb]
                          + [_number(p.error)] + [str(int(v)) for v in np.asarray(p.track).ravel()]))
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')


# ---------------------------------------------------------------------------------------------------
# Models

_READERS = {'.bin': (read_cameras_binary, read_images_binary, read_points3D_binary),
            '.txt': (read_cameras_text, read_images_text, read_points3D_text)}
_WRITERS = {'.bin': (write_cameras_binary, write_images_binary, write_points3D_binary),
            '.txt': (write_cameras_text, write_images_text, write_points3D_text)}


def model_extension(sparse_dir):
  """'.bin' or '.txt': the format of the complete model in sparse_dir (.bin when both are), else None."""
  for ext in ('.bin', '.txt'):
    if all(os.path.isfile(os.path.join(sparse_dir, name + ext)) for name in FILES):
      return ext
  return None


def read_model(sparse_dir):
  """The model in sparse_dir, binary or text (module docstring). Returns Model."""
  ext = model_extension(sparse_dir)
  if ext is None:
    present = sorted(os.listdir(sparse_dir)) if os.path.isdir(sparse_dir) else 'no such folder'
    _fail(f'No complete COLMAP model in {sparse_dir!r} (found: {present}): a model is cameras, images and '
          f'points3D, all .bin or all .txt. Point it at the folder COLMAP\'s mapper wrote (sparse/0), or '
          f're-run mapping.')
  cameras, images, points = (read(os.path.join(sparse_dir, name + ext))
                             for read, name in zip(_READERS[ext], FILES))
  images_path = os.path.join(sparse_dir, 'images' + ext)
  for image in images.values():
    if image.camera_id not in cameras:
      _fail(f'{images_path!r}: image {image.id} ({image.name}) uses camera {image.camera_id}, which '
            f'{os.path.join(sparse_dir, "cameras" + ext)!r} does not have: the model is inconsistent. {FIX}')
  return Model(cameras, images, points)


def write_model(model, sparse_dir, ext='.bin'):
  """Writes `model` as cameras, images and points3D + ext ('.bin' or '.txt') into sparse_dir."""
  if ext not in _WRITERS:
    raise ValueError(f'ext must be .bin or .txt, got {ext!r}.')
  os.makedirs(sparse_dir, exist_ok=True)
  for write, name, table in zip(_WRITERS[ext], FILES, (model.cameras, model.images, model.points3D)):
    write(table, os.path.join(sparse_dir, name + ext))
