"""Blender-format (NeRF synthetic) scenes: transforms_{split}.json plus RGBA PNGs.

Poses in transforms_*.json are camera-to-world matrices with the camera looking down its -Z axis and +Y
up (OpenGL / Blender), which is how they are returned: nothing here inverts or flips them.
"""

import json
import os

import imageio.v3 as iio
import numpy as np

from nerf_jax.cameras.pinhole import centred_intrinsics
from nerf_jax.datasets.generated import ensure_scene
from nerf_jax.datasets.scene import SceneSplit
from nerf_jax.errors import DatasetError

DOWNLOAD_HINT = (
    'The NeRF synthetic scenes (lego, ...) come from the NeRF authors\' "nerf_synthetic" archive '
    '(https://github.com/bmild/nerf, "Data"); unzip it and pass the folder that holds the scene folders '
    'with --config.data.root=PATH. The built-in scene needs no download: configs/demo.py.')


def composite_on_white(rgba):
  """Straight-alpha RGBA onto a white background: rgb * a + (1 - a).

  rgba: float32 [..., 4] in [0, 1] -> float32 [..., 3]
  """
  rgb, alpha = rgba[..., :3], rgba[..., 3:]
  return rgb * alpha + (1.0 - alpha)


def _area_weights(size_in, size_out):
  """Row-stochastic matrix [size_out, size_in] averaging the input cells each output cell covers."""
  edges = np.arange(size_out + 1) * (size_in / size_out)
  lo, hi = edges[:-1, None], edges[1:, None]
  cells = np.arange(size_in)[None, :]
  overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
  return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def area_resize(image, height, width):
  """Area-averaging resize (each output pixel is the mean of the input area it covers).

  image: float32 [H, W, C] -> float32 [height, width, C]; only downsampling is meant.
  """
  rows = _area_weights(image.shape[0], height)
  cols = _area_weights(image.shape[1], width)
  # Two contractions, one axis at a time: a single three-operand einsum would loop over every
  # (output, input) pixel pair. optimize=True hands each to BLAS: 18x faster than einsum's own loop
  # (0.03 against 0.54 s for an 806x605 photo halved), the same sums to float32 rounding.
  return np.einsum('bw,awc->abc', cols, np.einsum('ah,hwc->awc', rows, image, optimize=True), optimize=True)


def _fail(message):
  raise DatasetError(message)


def read_transforms(scene_dir, split):
  """Parsed transforms_{split}.json, checked for the fields the loader needs."""
  path = os.path.join(scene_dir, f'transforms_{split}.json')
  if not os.path.isdir(scene_dir):
    _fail(f'Scene folder {scene_dir!r} does not exist. {DOWNLOAD_HINT}')
  if not os.path.isfile(path):
    present = sorted(f for f in os.listdir(scene_dir) if f.startswith('transforms_'))
    _fail(f'{path!r} is missing (found: {present or "no transforms_*.json"}). A Blender scene has one '
          f'transforms_{{split}}.json per split; pick a split that exists with --config.data.split / '
          f'--config.eval.split, or {DOWNLOAD_HINT}')
  try:
    with open(path) as f:
      meta = json.load(f)
  except json.JSONDecodeError as e:
    _fail(f'{path!r} is not valid JSON ({e}); re-download or re-export the scene.')
  if not isinstance(meta, dict) or 'camera_angle_x' not in meta:
    _fail(f'{path!r} has no "camera_angle_x" (the horizontal field of view in radians).')
  angle = meta['camera_angle_x']
  if not isinstance(angle, (int, float)) or not 0 < angle < np.pi:
    _fail(f'{path!r}: "camera_angle_x" is {angle!r}; it must be a field of view in radians, in (0, pi).')
  frames = meta.get('frames')
  if not isinstance(frames, list):
    _fail(f'{path!r} has no "frames" list (one entry per image).')
  if not frames:
    _fail(f'{path!r} has an empty "frames" list: split {split!r} has no images.')
  check_frames(path, frames)
  seen = {}
  for i, frame in enumerate(frames):
    if frame['file_path'] in seen:
      _fail(f'{path!r}: frames {seen[frame["file_path"]]} and {i} both name {frame["file_path"]!r}; each '
            f'frame needs its own image.')
    seen[frame['file_path']] = i
  return meta


def check_frames(path, frames, shapes=((4, 4),)):
  """A DatasetError naming the file and frame unless every frame of a transforms file (a list of dicts)
  has a "file_path" and a "transform_matrix" of numbers of one of `shapes`."""
  for i, frame in enumerate(frames):
    if not isinstance(frame, dict) or 'file_path' not in frame or 'transform_matrix' not in frame:
      _fail(f'{path!r}: frame {i} needs "file_path" and "transform_matrix".')
    try:
      matrix = np.asarray(frame['transform_matrix'], np.float64)
    except (TypeError, ValueError):
      matrix = None
    if matrix is None or matrix.shape not in shapes:
      _fail(f'{path!r}: frame {i} ({frame["file_path"]}) "transform_matrix" is not a 4x4 matrix of numbers.')


def decode_image(path):
  """Any format's image file as float32 [H, W, C] in [0, 1] (C = 1 for grey, 3 RGB, 4 RGBA); a file
  that does not decode is a DatasetError naming it."""
  try:
    image = np.asarray(iio.imread(path))
  except Exception as e:  # noqa: BLE001 (a truncated or non-image file: each decoder fails its own way)
    _fail(f'Image {path!r} could not be read ({type(e).__name__}: {" ".join(str(e).split())[:160]}); it '
          f'is truncated or not an image. Re-export or re-download it.')
  if image.ndim == 2:
    image = image[..., None]
  scale = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
  return image.astype(np.float32) / scale


def read_rgba(scene_dir, file_path):
  """One frame's image as float32 [H, W, 4] in [0, 1]."""
  path = os.path.normpath(os.path.join(scene_dir, file_path))
  if not os.path.splitext(path)[1]:
    path += '.png'  # Blender's transforms name frames without the extension.
  if not os.path.isfile(path):
    _fail(f'Image {path!r} named in the transforms file is missing; the scene folder is incomplete.')
  image = decode_image(path)
  if image.shape[-1] != 4:
    _fail(f'Image {path!r} has {image.shape[-1]} channel(s); Blender scenes are RGBA (4 channels) so the '
          f'object can be composited onto the background. Re-export it with an alpha channel.')
  return image


def load_split(root, scene, split, *, input_ratio=1.0, white_bkgd=True, views=None):
  """Loads a split of a Blender scene.

  views: indices of the frames to load (all when None).
  input_ratio: output size / stored size, in (0, 1]; resizing averages areas, as the half-res data did.
  white_bkgd: composite onto white (rgb * a + (1 - a)); otherwise the straight rgb is kept.
  """
  if not 0.0 < input_ratio <= 1.0:
    _fail(f'data.input_ratio must be in (0, 1] (a downsampling factor), got {input_ratio}.')
  scene_dir = os.path.join(root, scene)
  meta = read_transforms(scene_dir, split)
  frames = meta['frames']
  views = range(len(frames)) if views is None else views
  for v in views:
    if not 0 <= v < len(frames):
      _fail(f'View {v} does not exist: split {split!r} of {scene_dir!r} has {len(frames)} views '
            f'(0..{len(frames) - 1}).')
  images, alphas, poses, names = [], [], [], []
  for v in views:
    rgba = read_rgba(scene_dir, frames[v]['file_path'])
    h, w = rgba.shape[:2]
    if not images:
      first_size = (h, w)
    elif (h, w) != first_size:
      _fail(f'Image {frames[v]["file_path"]!r} (frame {v} of {split!r} in {scene_dir!r}) is {w}x{h}, but '
            f'frame {views[0]} is {first_size[1]}x{first_size[0]}: every image of a split must have one '
            f'size (one camera). Re-export it at that size.')
    out_h, out_w = round(h * input_ratio), round(w * input_ratio)
    # Composite at full resolution, then average: averaging straight-alpha rgb first would blend the
    # (undefined) colour of transparent pixels into the object's edges.
    rgb = composite_on_white(rgba) if white_bkgd else rgba[..., :3]
    image = np.concatenate([rgb, rgba[..., 3:]], -1)
    if (out_h, out_w) != (h, w):
      image = area_resize(image, out_h, out_w)
    images.append(image[..., :3])
    alphas.append(image[..., 3])
    poses.append(np.asarray(frames[v]['transform_matrix'], np.float32))
    names.append(os.path.basename(frames[v]['file_path']))
  height, width = images[0].shape[:2]
  focal = 0.5 * width / np.tan(0.5 * float(meta['camera_angle_x']))
  intrinsics = np.tile(centred_intrinsics(focal, height, width), (len(images), 1))
  return SceneSplit(images=np.stack(images).astype(np.float32), poses=np.stack(poses),
                    intrinsics=intrinsics, names=tuple(names),
                    alphas=np.stack(alphas).astype(np.float32))


def load(data_config, split, views=None):
  """The 'blender' format: split `split` of data_config.scene under data_config.root (load_split). A
  built-in scene's name (datasets.generated.GENERATED_SCENES) renders it there first, once."""
  ensure_scene(data_config.root, data_config.scene)
  return load_split(data_config.root, data_config.scene, split, input_ratio=data_config.input_ratio,
                    white_bkgd=data_config.white_bkgd, views=views)
