"""LLFF forward-facing captures (NeRF's real scenes: fern, flower, ...): poses_bounds.npy + images.

poses_bounds.npy holds float [N, 17] per image: a 3x5 matrix flattened row by row (a camera-to-world
3x4 whose rotation columns are the camera's [down, right, back] axes, then a column [H, W, focal] of the
full-size photos), then the image's near and far depth bounds. The loader, as NeRF's code does:
  1. reads images_<factor>/ (LLFF's downsampled copies), or the full images/ resized where that folder
     is missing or incomplete, and scales the focal length by the size actually read, checking that
     height and width scale alike (a swapped H and W, or rotated photos, would not);
  2. reorders the axes to [right, up, back] (OpenGL, what camera.py expects);
  3. scales the world so that the nearest bound is 1 / BD_FACTOR (NDC's near plane at 1 then lies in
     front of everything), and the bounds with it;
  4. recentres: the average camera (average_pose) becomes the identity;
and splits the images: every data.llffhold-th (0, 8, 16, ...) is 'test', the rest 'train'.
"""

import os

import numpy as np

from nerf_jax.cameras.pinhole import centred_intrinsics
from nerf_jax.datasets.blender import area_resize, decode_image
from nerf_jax.datasets.scene import IMAGE_EXTENSIONS, SceneSplit
from nerf_jax.errors import DatasetError

BD_FACTOR = 0.75  # NeRF's: the nearest bound lands at 1 / 0.75 after rescaling
NEAR_MARGIN = 0.9  # NeRF samples from 0.9 x the nearest bound (without NDC)
SPLITS = ('train', 'test')


def _fail(message):
  raise DatasetError(message)


def read_poses_bounds(path):
  """poses_bounds.npy -> (poses float64 [N, 3, 5] as stored, bounds float64 [N, 2] (near, far))."""
  if not os.path.isfile(path):
    _fail(f'{path!r} is missing: an LLFF scene folder holds poses_bounds.npy (made by LLFF\'s '
          f'imgs2poses.py from a COLMAP run) beside its images/ or images_<factor>/ folder.')
  try:
    array = np.load(path)
  except Exception as e:  # noqa: BLE001 (a truncated or non-numpy file)
    _fail(f'{path!r} could not be read ({type(e).__name__}: {e}); re-create it with LLFF\'s imgs2poses.py.')
  if array.ndim != 2 or array.shape[1] != 17 or not len(array):
    _fail(f'{path!r} has shape {array.shape}; poses_bounds.npy must be [num_images, 17] (a 3x5 pose and '
          f'hwf matrix, then near and far, per image).')
  if not np.all(np.isfinite(array)):
    rows = np.nonzero(~np.all(np.isfinite(array), axis=1))[0]
    _fail(f'{path!r}: rows {rows.tolist()} hold NaN or Inf; fix or drop those images.')
  bounds = array[:, 15:17]
  if np.any(bounds[:, 0] <= 0) or np.any(bounds[:, 1] <= bounds[:, 0]):
    rows = np.nonzero((bounds[:, 0] <= 0) | (bounds[:, 1] <= bounds[:, 0]))[0]
    _fail(f'{path!r}: rows {rows.tolist()} have bounds (near, far) not 0 < near < far.')
  return array[:, :15].reshape(-1, 3, 5).astype(np.float64), bounds.astype(np.float64)


def llff_to_opengl(poses):
  """Camera-to-world 3x4 poses from LLFF's [down, right, back] camera axes to OpenGL's [right, up, back].

  poses: float [..., 3, >=4] -> float [..., 3, 4]
  """
  down, right, back, centre = (poses[..., :, i] for i in range(4))
  return np.stack([right, -down, back, centre], axis=-1)


def look_at_matrix(back, up, centre):
  """Camera-to-world 3x4 with the given back (+Z) axis, the camera's up (+Y) as close to `up` as
  possible, at `centre`. back, up, centre: float [3] -> float [3, 4]."""
  z = back / np.linalg.norm(back)
  x = np.cross(up, z)
  x /= np.linalg.norm(x)
  y = np.cross(z, x)
  return np.stack([x, y, z, centre], axis=-1)


def average_pose(poses):
  """The mean camera of float [N, >=3, 4] camera-to-world poses: the centres' mean, the back axes'
  mean direction and the up axes' mean. Returns float [3, 4]."""
  return look_at_matrix(poses[:, :3, 2].sum(0), poses[:, :3, 1].sum(0), poses[:, :3, 3].mean(0))


def recentre(poses):
  """Poses float [N, 3, 4] expressed relative to their average camera (which becomes the identity)."""
  average = np.concatenate([average_pose(poses), [[0, 0, 0, 1]]], axis=0)
  full = np.concatenate([poses, np.broadcast_to([[[0, 0, 0, 1.0]]], (len(poses), 1, 4))], axis=1)
  return (np.linalg.inv(average) @ full)[:, :3, :]


def spiral_poses(poses, near, far, num_frames, rotations=2, z_rate=0.5):
  """NeRF's spiral camera path for forward-facing scenes: the cameras circle (twice by default) in a
  plane facing the scene, radii from the training cameras' spread, always looking at a focus depth
  between near and far (the depth of a 'mean' disparity).

  poses: float [N, >=3, 4] camera-to-world (OpenGL axes); near < far: the scene's closest and farthest
  sampling depths (NeRF's: 0.9 x the nearest bound, as SceneSplit.near of an LLFF scene holds)
  returns float32 [num_frames, 4, 4]
  """
  centre = average_pose(poses)
  up = poses[:, :3, 1].sum(0)
  close, infinity = near, 5.0 * far
  # Focus where the disparity is 3/4 of the way from infinity to the closest depth (NeRF's dt = .75).
  focus = 1.0 / (0.25 / close + 0.75 / infinity)
  radii = np.append(np.percentile(np.abs(poses[:, :3, 3] - centre[:, 3]), 90, axis=0), 1.0)
  frames = []
  for theta in np.linspace(0.0, 2.0 * np.pi * rotations, num_frames, endpoint=False):
    position = centre @ (np.array([np.cos(theta), -np.sin(theta), -np.sin(theta * z_rate), 1.0]) * radii)
    target = centre @ np.array([0.0, 0.0, -focus, 1.0])
    frames.append(np.concatenate([look_at_matrix(position - target, up, position), [[0, 0, 0, 1]]]))
  return np.stack(frames).astype(np.float32)


def image_files(folder):
  """The image files in `folder`, sorted by name (LLFF's order: poses_bounds.npy's rows follow it)."""
  if not os.path.isdir(folder):
    return []
  return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def read_rgb(path):
  """float32 [H, W, 3] in [0, 1] (an alpha channel, if any, is dropped: LLFF photos are opaque)."""
  image = decode_image(path)
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def _image_source(scene_dir, factor, count, poses_path):
  """(folder, files, resize): where the `count` images are read from. images_<factor>/ when it holds
  exactly `count` images, else the full-size images/ (resized by 1 / factor on reading)."""
  wanted = f'images_{factor}' if factor > 1 else 'images'
  files = image_files(os.path.join(scene_dir, wanted))
  if len(files) == count:
    return os.path.join(scene_dir, wanted), files, 1.0
  full = image_files(os.path.join(scene_dir, 'images'))
  if factor > 1 and len(full) == count:
    return os.path.join(scene_dir, 'images'), full, 1.0 / factor
  found = {name: len(image_files(os.path.join(scene_dir, name))) for name in sorted(os.listdir(scene_dir))
           if name.startswith('images') and os.path.isdir(os.path.join(scene_dir, name))}
  _fail(f'{poses_path!r} has poses for {count} images, but {os.path.join(scene_dir, wanted)!r} holds '
        f'{len(files)} (image folders found: {found or "none"}). Each image needs its row in '
        f'poses_bounds.npy, in name order: re-run imgs2poses.py, or set data.factor to a folder that is '
        f'complete.')


def load_scene(scene_dir, factor=1, input_ratio=1.0):
  """Every image of an LLFF scene with its pose, intrinsics and bounds, in the loader's world (module
  docstring: OpenGL axes, rescaled, recentred).

  returns dict: images float32 [N, H, W, 3], poses float32 [N, 4, 4], intrinsics float32 [N, 4],
  near / far float32 [N] (near with NeRF's 0.9 margin), names (tuple), scale (the world's rescaling
  factor), average (float64 [3, 4], the average camera before recentring, in rescaled units)
  """
  if not os.path.isdir(scene_dir):
    _fail(f'Scene folder {scene_dir!r} does not exist. NeRF\'s LLFF scenes (fern, ...) are in its '
          f'"nerf_llff_data" archive (https://github.com/bmild/nerf, "Data"); pass the folder holding the '
          f'scene folders with --config.data.root=PATH.')
  if not (isinstance(factor, int) and factor >= 1):
    _fail(f'data.factor must be an integer >= 1 (images_<factor>/), got {factor!r}.')
  poses_path = os.path.join(scene_dir, 'poses_bounds.npy')
  raw_poses, bounds = read_poses_bounds(poses_path)
  folder, files, resize = _image_source(scene_dir, factor, len(raw_poses), poses_path)
  images = []
  for name in files:
    image = read_rgb(os.path.join(folder, name))
    if resize * input_ratio != 1.0:
      image = area_resize(image, round(image.shape[0] * resize * input_ratio),
                          round(image.shape[1] * resize * input_ratio))
    if images and image.shape != images[0].shape:
      _fail(f'Image {os.path.join(folder, name)!r} is {image.shape[1]}x{image.shape[0]} but '
            f'{files[0]!r} is {images[0].shape[1]}x{images[0].shape[0]}: the images of an LLFF scene come '
            f'from one camera and share one size. Resize or remove it (and its row of poses_bounds.npy).')
    images.append(image)
  height, width = images[0].shape[:2]
  full_h, full_w, full_focal = raw_poses[0, :, 4]
  scale_h, scale_w = height / full_h, width / full_w
  # Sizes are whole pixels: the two scales may differ by rounding, not by more.
  if abs(scale_h * full_w - width) > 1.0 + 1e-6 or abs(scale_w * full_h - height) > 1.0 + 1e-6:
    swapped = abs(width / height - full_h / full_w) < 0.01
    _fail(f'{poses_path!r} gives the photos as {full_w:g}x{full_h:g} (W x H) but the images in {folder!r} '
          f'are {width}x{height}{", H and W swapped (rotated photos?)" if swapped else ""}: the '
          f'focal length cannot be scaled. Use images with the aspect ratio COLMAP saw, un-rotated.')
  focal = full_focal * scale_w
  poses = llff_to_opengl(raw_poses)
  # Rescale so the nearest bound sits at 1 / BD_FACTOR: scenes of any size meet NDC's near plane at 1.
  scale = 1.0 / (bounds.min() * BD_FACTOR)
  poses[:, :, 3] *= scale
  bounds = bounds * scale
  average = average_pose(poses)
  poses = recentre(poses)
  poses = np.concatenate([poses, np.broadcast_to([[[0, 0, 0, 1.0]]], (len(poses), 1, 4))], axis=1)
  intrinsics = np.tile(centred_intrinsics(focal, height, width), (len(images), 1))
  return {'images': np.stack(images).astype(np.float32), 'poses': poses.astype(np.float32),
          'intrinsics': intrinsics, 'near': (NEAR_MARGIN * bounds[:, 0]).astype(np.float32),
          'far': bounds[:, 1].astype(np.float32), 'names': tuple(files), 'scale': scale,
          'average': average}


def split_indices(num_images, split, llffhold, where):
  """Indices of split 'test' (every llffhold-th image from 0) or 'train' (the others); llffhold 0: every
  image is 'train' and 'test' is empty, an error. int64 [num_views] into the name-sorted images."""
  everything = np.arange(num_images)
  test = everything[::llffhold] if llffhold > 0 else everything[:0]
  if split == 'test':
    chosen = test
  elif split == 'train':
    chosen = np.setdiff1d(everything, test)
  else:
    _fail(f'{where} has no split {split!r}: its splits are {SPLITS} (every data.llffhold-th image is '
          f'"test"). Set data.split / eval.split to one of them.')
  if not len(chosen):
    _fail(f'Split {split!r} of {where} is empty ({num_images} images, data.llffhold={llffhold}); '
          f'set data.llffhold to hold some images out, or use split "train".')
  return chosen


def load(data_config, split, views=None):
  """The 'llff' format: split `split` of data_config.scene under data_config.root."""
  d = data_config
  scene_dir = os.path.join(d.root, d.scene)
  scene = load_scene(scene_dir, d.factor, d.input_ratio)
  indices = split_indices(len(scene['names']), split, d.llffhold, repr(scene_dir))
  if views is not None:
    for v in views:
      if not 0 <= v < len(indices):
        _fail(f'View {v} does not exist: split {split!r} of {scene_dir!r} has {len(indices)} views.')
    indices = indices[list(views)]
  return SceneSplit(images=scene['images'][indices], poses=scene['poses'][indices],
                    intrinsics=scene['intrinsics'][indices],
                    names=tuple(scene['names'][i] for i in indices), near=scene['near'][indices],
                    far=scene['far'][indices], layout='forward')
