"""The 'transforms' format: the transforms.json of instant-NGP's colmap2nerf, nerfstudio's
ns-process-data, Polycam and Record3D exports (a phone capture's poses and intrinsics, no alpha).

Layout: <data.root>/<data.scene>/
  transforms.json, or transforms_{train,val,test}.json (then those are the splits)
  the photos, where each frame's "file_path" (relative to the JSON's folder, with or without its
  extension) says; for data.factor > 1, nerfstudio's downscaled copies in <first folder>_<factor>/
  (images_2/frame_00001.png for images/frame_00001.png) where they exist, else the photo resized

The loader:
  1. reads the intrinsics of each frame: its own keys, else the file's top-level ones: fl_x / fl_y, or
     camera_angle_x / camera_angle_y (a field of view in radians: fl = 0.5 w / tan(0.5 angle)), one of
     the pair standing for both where only one is given; cx, cy (default: the centre); w, h (default:
     the photo's size); OpenCV distortion k1 k2 k3 k4 p1 p2 (absent: 0), undistorted to a pinhole with
     the same fx, fy, cx, cy as the COLMAP loader does (colmap.camera_pixels; k3 and k4 are the r^6 and
     r^8 terms of the radial polynomial, nerfstudio's); "camera_model": "OPENCV_FISHEYE" (or
     "is_fisheye": true) is the equidistant fisheye with k1..k4; any other model is an error;
  2. takes each "transform_matrix" as camera-to-world in OpenGL axes (x right, y up, z back), as all
     these tools write it, and normalises the world as the COLMAP loader does (colmap.look_at_layout:
     an inward capture centred on the point every camera looks at, up to +Z, the cameras'
     mean distance from it CAMERA_RADIUS = 4, what the contraction's radius expects; a forward-facing
     one LLFF's way), from the frames of every split together;
  3. per view near/far: from the sparse points where the file names a point cloud ("ply_file_path",
     nerfstudio's sparse_pc.ply), as the COLMAP loader's; else, for an inward capture, NEAR_FRACTION
     (0.3) of each camera's distance to the centre and FAR_FRACTION of it (no points: the geometry of
     the capture is all there is; a nearer bound lets floaters fog the held-out views); a
     forward-facing capture without points is an error (its scale comes from the nearest depth);
and splits: the transforms_{split}.json files where they exist, else the frames sorted by file path,
every data.llffhold-th (0, llffhold, ...) 'test', the rest 'train' (as for LLFF and COLMAP scenes).
"""

import json
import os

import numpy as np

from nerf_jax.datasets.blender import check_frames, decode_image
from nerf_jax.datasets.colmap import (FAR_MARGIN, camera_pixels, chosen_views, forward_normalisation,
                                      inward_normalisation, look_at_layout, stacked_views)
from nerf_jax.datasets.llff import NEAR_MARGIN, split_indices
from nerf_jax.datasets.scene import IMAGE_EXTENSIONS, SceneSplit
from nerf_jax.errors import DatasetError

SPLIT_FILES = ('train', 'val', 'test')  # transforms_<split>.json
# Without points, an inward capture's bounds along each view: this fraction of the camera's distance
# to the centre out to this multiple (past the far side). Not nerfacto's near of 0.05 of it: on the
# fruit capture (configs/colmap_fast_cpu.py, benchmarks/floaters.py) the held-out views then held
# 0.58 of their opacity in the first 35% of the way to the object, a white fog (21.66 dB, median
# 17.39); from about a quarter of the way, what the COLMAP loader's points give bird (its nearest
# bound 1.33 of 4), the fog fell to 0.29 and the mean rose 3 dB (docs/tutorial.md, section 11).
NEAR_FRACTION, FAR_FRACTION = 0.3, 2.5
FISHEYE = 'OPENCV_FISHEYE'
PINHOLE_MODELS = ('OPENCV', 'PINHOLE', 'SIMPLE_PINHOLE', 'SIMPLE_RADIAL', 'RADIAL')
DISTORTION = ('k1', 'k2', 'p1', 'p2', 'k3', 'k4')  # colmap.distort's order


def _fail(message):
  raise DatasetError(message)


def split_files(scene_dir):
  """{split: path} of the transforms_<split>.json files in scene_dir, or {None: transforms.json}."""
  found = {s: os.path.join(scene_dir, f'transforms_{s}.json') for s in SPLIT_FILES}
  found = {s: p for s, p in found.items() if os.path.isfile(p)}
  if found:
    return found
  single = os.path.join(scene_dir, 'transforms.json')
  if os.path.isfile(single):
    return {None: single}
  if not os.path.isdir(scene_dir):
    _fail(f'Scene folder {scene_dir!r} does not exist; pass the folder holding it with '
          f'--config.data.root=PATH and its name with --config.data.scene.')
  _fail(f'No transforms.json (or transforms_{{train,val,test}}.json) in {scene_dir!r}: export one '
        f'(instant-NGP\'s colmap2nerf, ns-process-data, Polycam, Record3D) or choose another data.format.')


def read_json(path):
  """The parsed transforms file at `path`: a dict with a non-empty "frames" list, each frame a dict
  with "file_path" and a 4x4 "transform_matrix"; else a DatasetError naming the file and frame."""
  try:
    with open(path) as f:
      meta = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    _fail(f'{path!r} could not be read as JSON ({e}); re-export it.')
  frames = meta.get('frames') if isinstance(meta, dict) else None
  if not isinstance(frames, list) or not frames:
    _fail(f'{path!r} has no "frames" list (one entry per photo, each with "file_path" and '
          f'"transform_matrix").')
  check_frames(path, frames, shapes=((4, 4), (3, 4)))  # some exporters drop the last row
  return meta


def has_intrinsics(meta):
  """Whether a parsed transforms file gives a focal length in pixels or an image size, at the top level
  or in its first frame (Polycam and Record3D write them per frame): what tells a phone capture's
  transforms.json from a Blender scene's (camera_angle_x alone, RGBA)."""
  frames = meta.get('frames') if isinstance(meta.get('frames'), list) and meta.get('frames') else [{}]
  first = frames[0] if isinstance(frames[0], dict) else {}
  return any(k in meta or k in first for k in ('fl_x', 'fl_y', 'w', 'h'))


def _number(value, key, where):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
    _fail(f'{where}: "{key}" is {value!r}; it must be a finite number.')
  return float(value)


def frame_camera(meta, frame, where, size):
  """(fx, fy, cx, cy) float64 [4], coeffs float64 [6] or [4] (fisheye), fisheye bool, (w, h) the
  intrinsics are given at: the frame's own keys over the file's (module docstring, 1). size(): the
  photo's (width, height), read only where the file leaves w or h out."""
  def get(key, default=None):
    value = frame.get(key, meta.get(key, default))
    return value if value is None else _number(value, key, where)

  w, h = get('w'), get('h')
  if w is None or h is None:
    width, height = size()
    w, h = (width if w is None else w), (height if h is None else h)
  fx, fy = get('fl_x'), get('fl_y')
  angle_x, angle_y = get('camera_angle_x'), get('camera_angle_y')
  for angle, key in ((angle_x, 'camera_angle_x'), (angle_y, 'camera_angle_y')):
    if angle is not None and not 0 < angle < np.pi:
      _fail(f'{where}: "{key}" is {angle!r}; it must be a field of view in radians, in (0, pi).')
  fx = fx if fx is not None else (0.5 * w / np.tan(0.5 * angle_x) if angle_x is not None else None)
  fy = fy if fy is not None else (0.5 * h / np.tan(0.5 * angle_y) if angle_y is not None else None)
  if fx is None and fy is None:
    _fail(f'{where} gives no focal length: add "fl_x" / "fl_y" (pixels) or "camera_angle_x" (radians), '
          f'per frame or at the top level.')
  fx, fy = (fx if fx is not None else fy), (fy if fy is not None else fx)
  cx, cy = get('cx', 0.5 * w), get('cy', 0.5 * h)
  model = frame.get('camera_model', meta.get('camera_model'))
  fisheye = model == FISHEYE or bool(frame.get('is_fisheye', meta.get('is_fisheye', False)))
  if model is not None and not fisheye and model not in PINHOLE_MODELS:
    _fail(f'{where}: "camera_model" is {model!r}, which this loader does not undistort (it does '
          f'{", ".join(PINHOLE_MODELS)} and {FISHEYE}); undistort the photos (colmap image_undistorter) and '
          f'write "camera_model": "PINHOLE".')
  if fisheye:
    coeffs = np.array([get(k, 0.0) for k in ('k1', 'k2', 'k3', 'k4')])
    if get('p1', 0.0) or get('p2', 0.0):
      _fail(f'{where}: a fisheye camera ({FISHEYE}) has no tangential terms, but "p1"/"p2" are set; '
            f'fix the export\'s camera model.')
  else:
    coeffs = np.array([get(k, 0.0) for k in DISTORTION])
  return np.array([fx, fy, cx, cy]), coeffs, fisheye, (w, h)


def resolve_image(scene_dir, file_path, factor, where):
  """(path, downscale): the photo a frame's file_path names under scene_dir (its extension found
  among IMAGE_EXTENSIONS where the path has none); for factor > 1 nerfstudio's copy in
  <first folder>_<factor>/ where it exists (downscale 1), else the photo itself (downscale factor)."""
  def find(relative):
    path = os.path.normpath(os.path.join(scene_dir, relative))
    if os.path.splitext(path)[1]:
      return path if os.path.isfile(path) else None
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
      if os.path.isfile(path + ext):
        return path + ext
    return None

  relative = os.path.normpath(str(file_path))
  if factor > 1:
    parts = relative.split(os.sep)
    if len(parts) > 1:
      copy = find(os.path.join(f'{parts[0]}_{factor}', *parts[1:]))
      if copy is not None:
        return copy, 1
  path = find(relative)
  if path is None:
    _fail(f'{where}: its photo {os.path.join(scene_dir, relative)!r} is missing (file_path '
          f'{file_path!r}, relative to the JSON\'s folder, any of {", ".join(IMAGE_EXTENSIONS)} where it '
          f'has no extension): copy it there or drop the frame.')
  return path, factor


def _points(scene_dir, meta, where):
  """float64 [P, 3] of the point cloud the file names ("ply_file_path"), or None."""
  name = meta.get('ply_file_path')
  if not name:
    return None
  path = os.path.normpath(os.path.join(scene_dir, name))
  try:
    import trimesh  # the mesh mode's reader; only a file that names points needs it
    points = np.asarray(trimesh.load(path).vertices, np.float64)
  except Exception as e:  # noqa: BLE001 (a missing or garbled .ply: each reader fails its own way)
    _fail(f'{where}: "ply_file_path" {name!r} could not be read as a point cloud ({type(e).__name__}: '
          f'{" ".join(str(e).split())[:120]}); fix the path or remove the key.')
  if points.ndim != 2 or points.shape[1] != 3 or not len(points):
    _fail(f'{where}: "ply_file_path" {name!r} holds no points; fix the path or remove the key.')
  return points


def read_scene(scene_dir, factor=1, llffhold=8):
  """Every frame of the scene's transforms file(s), before any pixel is read: a dict with 'frames'
  (per frame: 'path', 'downscale', 'name', 'pinhole', 'coeffs', 'fisheye', 'size', 'where'), 'splits'
  ({split: frame indices, or a function giving them}), 'poses' float64 [N, 4, 4] normalised, 'near', 'far' float64 [N], 'layout'."""
  if not (isinstance(factor, (int, np.integer)) and factor >= 1):
    _fail(f'data.factor must be an integer >= 1, got {factor!r}.')
  files = split_files(scene_dir)
  frames, poses, splits, points = [], [], {}, None
  for split, path in files.items():
    meta = read_json(path)
    points = _points(scene_dir, meta, repr(path)) if points is None else points
    order = sorted(range(len(meta['frames'])), key=lambda i: str(meta['frames'][i]['file_path']))
    start = len(frames)
    for i in order:
      frame = meta['frames'][i]
      where = f'{path!r}: frame {i} ({frame["file_path"]})'
      image_path, downscale = resolve_image(scene_dir, frame['file_path'], factor, where)
      matrix = np.eye(4)
      matrix[:3] = np.asarray(frame['transform_matrix'], np.float64)[:3]
      if not np.all(np.isfinite(matrix)):
        _fail(f'{where}: "transform_matrix" has NaN or Inf entries; fix or drop the frame.')
      frames.append({'path': image_path, 'downscale': downscale, 'where': where, 'meta': meta,
                     'frame': frame, 'name': os.path.relpath(image_path, scene_dir).replace(os.sep, '/')})
      poses.append(matrix)
    splits[split] = np.arange(start, len(frames))
  poses = np.stack(poses)
  if None in splits:  # one file: every llffhold-th frame (sorted by file path) held out, on demand
    splits = {s: (lambda s=s: split_indices(len(frames), s, llffhold, repr(files[None])))
              for s in ('train', 'test')}
  layout, centre = look_at_layout(poses)
  if points is not None:
    depths = [(points - p[:3, 3]) @ -p[:3, 2] for p in poses]
    bounds = np.array([np.percentile(d[d > 0], (1, 99)) if np.any(d > 0) else (np.nan, np.nan)
                       for d in depths])
    if np.any(np.isnan(bounds)):
      bad = frames[int(np.flatnonzero(np.isnan(bounds[:, 0]))[0])]['where']
      _fail(f'{bad}: no point of the point cloud lies in front of it, so its near/far cannot be set: '
            f'its pose is wrong.')
  elif layout == 'inward':
    distance = np.linalg.norm(poses[:, :3, 3] - centre, axis=-1)
    bounds = np.stack([NEAR_FRACTION * distance / NEAR_MARGIN, FAR_FRACTION * distance / FAR_MARGIN], -1)
  else:
    _fail(f'{list(files.values())[0]!r}: the cameras face one way (a forward-facing capture) and the file '
          f'names no point cloud ("ply_file_path"), so the scene\'s scale cannot be set from its depths: '
          f'export it with its sparse points (ns-process-data writes sparse_pc.ply), or use its COLMAP '
          f'model (data.format=\'colmap\').')
  if layout == 'inward':
    scale, rotation, translation = inward_normalisation(poses, centre)
  else:
    scale, rotation, translation = forward_normalisation(poses, bounds[:, 0].min())
  normalised = poses.copy()
  normalised[:, :3, :3] = rotation @ poses[:, :3, :3]
  normalised[:, :3, 3] = scale * poses[:, :3, 3] @ rotation.T + translation
  return {'frames': frames, 'splits': splits, 'poses': normalised, 'layout': layout,
          'near': NEAR_MARGIN * scale * bounds[:, 0], 'far': FAR_MARGIN * scale * bounds[:, 1]}


def load_split(root, scene, split, *, factor=1, llffhold=8, input_ratio=1.0, white_bkgd=True, views=None):
  """Split `split` of the transforms.json scene root/scene, in the normalised world (module docstring).

  views: indices within the split (all when None). Returns SceneSplit with per-view intrinsics and
  near/far, and alphas where the photos have an alpha channel (1 for any that do not).
  """
  if not 0.0 < input_ratio <= 1.0:
    _fail(f'data.input_ratio must be in (0, 1] (a downsampling factor), got {input_ratio}.')
  scene_dir = os.path.join(root, scene)
  data = read_scene(scene_dir, factor, llffhold)
  if split not in data['splits']:
    _fail(f'{scene_dir!r} has no split {split!r}: its splits are {sorted(data["splits"])}. Set data.split '
          f'/ eval.split to one of them.')
  indices = data['splits'][split]
  indices = chosen_views(indices() if callable(indices) else indices, views, split, scene_dir)

  def read(i):
    f = data['frames'][i]
    pinhole, coeffs, fisheye, calibrated = frame_camera(f['meta'], f['frame'], f['where'],
                                                        lambda: _photo_size(f['path']))
    return camera_pixels(f['path'], calibrated, pinhole, coeffs, f'the camera of {f["where"]}',
                         fisheye=fisheye, downscale=f['downscale'], input_ratio=input_ratio,
                         white_bkgd=white_bkgd)

  images, alphas, intrinsics = stacked_views(indices, read, lambda i: f"{data['frames'][i]['where']}: its photo")
  return SceneSplit(images=images, poses=data['poses'][indices].astype(np.float32), intrinsics=intrinsics,
                    names=tuple(data['frames'][i]['name'] for i in indices), alphas=alphas,
                    near=data['near'][indices].astype(np.float32), far=data['far'][indices].astype(np.float32),
                    layout=data['layout'])


def _photo_size(path):
  """(width, height) of an image file, read from its header where the format allows."""
  shape = decode_image(path).shape
  return shape[1], shape[0]


def load(data_config, split, views=None):
  """The 'transforms' format: split `split` of data_config.scene under data_config.root (load_split)."""
  d = data_config
  return load_split(d.root, d.scene, split, factor=d.factor, llffhold=d.llffhold, input_ratio=d.input_ratio,
                    white_bkgd=d.white_bkgd, views=views)
