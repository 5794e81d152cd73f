"""Camera poses for your own photos: a folder of photos (or a video) -> a COLMAP scene, with pycolmap.

  python -m nerf_jax.sfm PHOTOS_OR_VIDEO --out data/mine/SCENE [--every 10] [--max-size 800]

writes, under SCENE:
  images/<name>          the images used: the photos (resized) or every Nth frame of the video
  sparse/0/*.bin         the COLMAP model (cameras, images, points3D) that data.format='colmap' reads;
                         the largest model when the mapper made several (all are in colmap/models/)
  colmap/database.db     the features and matches (COLMAP's GUI opens it with images/)
  unregistered/          the images the mapper could not place, moved out of images/
and prints the command that trains on it. Structure from motion runs on the CPU: SIFT features, matching
(exhaustive for photos, sequential for a video), incremental mapping; with a distortion --camera-model
the images are then undistorted to a pinhole camera (the originals kept in colmap/distorted_images/).
pycolmap is an optional extra (requirements-sfm.txt); nothing else in nerf_jax needs it.
"""

import argparse
import os
import shlex
import shutil
import sys
import time

from nerf_jax.datasets.scene import IMAGE_EXTENSIONS
from nerf_jax.errors import DatasetError

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.m4v', '.avi', '.mkv', '.webm')
MIN_IMAGES = 3  # the mapper's smallest model: an initial pair and one more view
# 800 px, the size of the Blender scenes: SIFT on a 12-megapixel photo takes seconds per image and the
# exhaustive matching grows with the features, while a NeRF trains at about this size anyway (and
# poses estimated at the size it trains at are accurate to a fraction of its pixels).
DEFAULT_MAX_SIZE = 800
# PINHOLE (fx, fy, cx, cy) is the camera the NeRF casts its rays through, so poses estimated with it are
# consistent with training; phone and most camera JPEGs are already corrected for lens distortion. The
# distortion models (wide-angle, action cameras) are estimated, then the images undistorted to a pinhole.
CAMERA_MODELS = ('PINHOLE', 'SIMPLE_PINHOLE', 'SIMPLE_RADIAL', 'RADIAL', 'OPENCV')
PINHOLE_MODELS = ('PINHOLE', 'SIMPLE_PINHOLE')
OUTPUTS = ('images', 'sparse', 'colmap', 'unregistered')  # what this writes in SCENE (--overwrite removes)


def import_pycolmap():
  try:
    import pycolmap  # noqa: PLC0415 (optional: only this command needs it)
  except ImportError as e:
    raise DatasetError(f'camera poses from photos need pycolmap, an optional extra ({e}): '
                       f'pip install -r requirements-sfm.txt') from e
  return pycolmap


def _log(message, start):
  print(f'[sfm {time.perf_counter() - start:6.1f} s] {message}', flush=True)


def _resized(image, max_size):
  """PIL image with its longest side at most max_size (0: unchanged); Lanczos, which antialiases."""
  from PIL import Image  # noqa: PLC0415
  longest = max(image.size)
  if not max_size or longest <= max_size:
    return image
  scale = max_size / longest
  return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                      Image.Resampling.LANCZOS)


def image_names(folder):
  """The images directly in `folder` (by extension), sorted by name."""
  return sorted(f for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def copy_photos(folder, images_dir, max_size):
  """Copies the photos of `folder` into images_dir: upright (EXIF orientation applied) and at most
  max_size pixels on their longest side; an untouched photo is copied byte for byte. Returns the names."""
  from PIL import Image, ImageOps  # noqa: PLC0415 (a dependency of imageio)
  names = image_names(folder)
  for name in names:
    source, target = os.path.join(folder, name), os.path.join(images_dir, name)
    try:
      with Image.open(source) as photo:
        rotated = photo.getexif().get(0x0112, 1) != 1  # EXIF Orientation: the camera was turned
        if not rotated and (not max_size or max(photo.size) <= max_size):
          shutil.copy2(source, target)
          continue
        image = _resized(ImageOps.exif_transpose(photo), max_size)
        # The EXIF travels with the copy: COLMAP takes its focal length prior from it.
        exif = image.getexif().tobytes() if 'exif' in photo.info else None
        if image.mode not in ('RGB', 'RGBA') or name.lower().endswith(('.jpg', '.jpeg')):
          image = image.convert('RGB')
        extra = {'quality': 95} if name.lower().endswith(('.jpg', '.jpeg')) else {}
        image.save(target, **extra, **({'exif': exif} if exif else {}))
    except OSError as e:
      raise DatasetError(f'{source} could not be read as an image ({e}); remove it or convert it.') from e
  return names


def extract_frames(video, images_dir, every, max_size):
  """Writes every `every`-th frame of `video` (0, every, 2 every, ...) as images_dir/frame_<i>.jpg, i the
  frame's index in the video. Returns the names."""
  import imageio.v3 as iio  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415
  names = []
  try:
    for i, frame in enumerate(iio.imiter(video, plugin='FFMPEG')):
      if i % every == 0:
        names.append(f'frame_{i:05d}.jpg')
        _resized(Image.fromarray(frame[..., :3]), max_size).save(os.path.join(images_dir, names[-1]),
                                                                 quality=95)
  except (OSError, RuntimeError) as e:
    raise DatasetError(f'{video} could not be read as a video ({" ".join(str(e).split())[:200]}).') from e
  return names


def check_output(scene_dir, source, overwrite):
  """Refuses to write where it would replace a reconstruction, images it did not write, or the photos
  themselves. What an unfinished run left (images/ and colmap/, no sparse/) is replaced."""
  scene = os.path.abspath(scene_dir)
  for d in OUTPUTS:
    if os.path.commonpath([os.path.join(scene, d), os.path.abspath(source)]) == os.path.join(scene, d):
      raise DatasetError(f'the input {source} is inside {os.path.join(scene_dir, d)}, which this command '
                         f'rewrites; keep the photos in a folder of their own (e.g. SCENE/photos) and pass that.')
  full = lambda d: os.path.isdir(os.path.join(scene, d)) and bool(os.listdir(os.path.join(scene, d)))
  ours = os.path.exists(os.path.join(scene, 'colmap', 'database.db'))
  existing = [d + '/' for d in OUTPUTS if full(d) and (d == 'sparse' or not ours)]
  if existing and not overwrite:
    raise DatasetError(f'{scene_dir} already holds {", ".join(existing)} (an earlier reconstruction?); '
                       f'pass --overwrite to replace {"them" if len(existing) > 1 else "it"}, or choose '
                       f'another --out.')


def reconstruct(scene_dir, *, camera_model='PINHOLE', matcher='exhaustive', per_image_cameras=False,
                start=None):
  """Runs pycolmap on scene_dir/images: features, matches, incremental mapping. Returns the mapper's
  models (dict index -> pycolmap.Reconstruction), written to scene_dir/colmap/models/<index>/."""
  pycolmap = import_pycolmap()
  start = time.perf_counter() if start is None else start
  images_dir, colmap_dir = os.path.join(scene_dir, 'images'), os.path.join(scene_dir, 'colmap')
  database, models_dir = os.path.join(colmap_dir, 'database.db'), os.path.join(colmap_dir, 'models')
  os.makedirs(models_dir, exist_ok=True)
  num_images = len(image_names(images_dir))

  reader = pycolmap.ImageReaderOptions()
  reader.camera_model = camera_model
  mode = pycolmap.CameraMode.PER_IMAGE if per_image_cameras else pycolmap.CameraMode.SINGLE
  extraction = pycolmap.FeatureExtractionOptions()
  extraction.use_gpu = False
  _log(f'features: SIFT on {num_images} images ({"one camera each" if per_image_cameras else "one shared camera"}, '
       f'{camera_model})...', start)
  pycolmap.extract_features(database, images_dir, camera_mode=mode, reader_options=reader,
                            extraction_options=extraction, device=pycolmap.Device.cpu)

  matching = pycolmap.FeatureMatchingOptions()
  matching.use_gpu = False
  pairs = num_images * (num_images - 1) // 2
  _log(f'matching: {matcher} ({pairs} pairs)...' if matcher == 'exhaustive' else
       f'matching: sequential (each image with its next 10 and 2^k-th neighbours)...', start)
  if matcher == 'exhaustive':
    pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
  else:
    pycolmap.match_sequential(database, matching_options=matching, device=pycolmap.Device.cpu)

  options = pycolmap.IncrementalPipelineOptions()
  options.min_model_size = MIN_IMAGES  # COLMAP's 10 would drop a small capture's only model
  registered, last = [0], [time.perf_counter()]

  def count(n):
    registered[0] += n
    if time.perf_counter() - last[0] > 10.0:
      last[0] = time.perf_counter()
      _log(f'mapping: {registered[0]} images registered so far', start)

  _log(f'mapping: incremental, {num_images} images...', start)
  return pycolmap.incremental_mapping(database, images_dir, models_dir, options,
                                      initial_image_pair_callback=lambda: count(2),
                                      next_image_callback=lambda: count(1))


def _undistort(pycolmap, model_dir, scene_dir):
  """Replaces scene_dir/images and sparse/0 by undistorted images and their PINHOLE model; the original
  images go to colmap/distorted_images/ (the database's names refer to them)."""
  tmp = os.path.join(scene_dir, 'colmap', 'undistorted')
  shutil.rmtree(tmp, ignore_errors=True)
  pycolmap.undistort_images(tmp, model_dir, os.path.join(scene_dir, 'images'))
  os.replace(os.path.join(scene_dir, 'images'), os.path.join(scene_dir, 'colmap', 'distorted_images'))
  os.replace(os.path.join(tmp, 'images'), os.path.join(scene_dir, 'images'))
  shutil.rmtree(model_dir)
  os.replace(os.path.join(tmp, 'sparse'), model_dir)
  shutil.rmtree(tmp)


def run(source, scene_dir, *, every=1, max_size=DEFAULT_MAX_SIZE, camera_model='PINHOLE', matcher=None,
        per_image_cameras=False, overwrite=False, verbose=False):
  """source (a folder of photos or a video) -> scene_dir, as the module docstring says. Returns a report
  (a dict: images, registered, unregistered names, matcher, models, points, reprojection error)."""
  start = time.perf_counter()
  if not os.path.exists(source):
    raise DatasetError(f'{source} does not exist: give a folder of photos ({", ".join(IMAGE_EXTENSIONS)}) '
                       f'or a video ({", ".join(VIDEO_EXTENSIONS)}).')
  is_video = os.path.isfile(source)
  if is_video and not source.lower().endswith(VIDEO_EXTENSIONS):
    raise DatasetError(f'{source} is neither a folder of photos nor a video ({", ".join(VIDEO_EXTENSIONS)}).')
  if not is_video:
    found = len(image_names(source))
    if found < MIN_IMAGES:
      raise DatasetError(f'{source} holds {found or "no"} image{"s" * (found != 1)} '
                         f'({", ".join(IMAGE_EXTENSIONS)}); structure from motion needs at least {MIN_IMAGES} '
                         f'(20-100 overlapping photos from all around the object work best).')
  if every < 1 or max_size < 0 or camera_model not in CAMERA_MODELS:
    raise DatasetError(f'--every must be >= 1 (got {every}), --max-size >= 0 (got {max_size}) and '
                       f'--camera-model one of {CAMERA_MODELS} (got {camera_model!r}).')
  pycolmap = import_pycolmap()  # before anything is written
  if not verbose:
    pycolmap.logging.minloglevel = pycolmap.logging.Level.ERROR.value  # warnings about threads, RAM
  check_output(scene_dir, source, overwrite)
  for d in OUTPUTS:
    shutil.rmtree(os.path.join(scene_dir, d), ignore_errors=True)
  images_dir = os.path.join(scene_dir, 'images')
  os.makedirs(images_dir)

  what = f'frames 0, {every}, {2 * every}, ... of {source}' if is_video else f'the photos of {source}'
  _log(f'images: {what} -> {images_dir} (longest side at most {max_size or "any"} px)...', start)
  names = (extract_frames(source, images_dir, every, max_size) if is_video
           else copy_photos(source, images_dir, max_size))
  if len(names) < MIN_IMAGES:
    raise DatasetError(f'{source} gave {len(names)} frame{"s" * (len(names) != 1)} with --every {every}; '
                       f'structure from motion needs at least {MIN_IMAGES}: pass a smaller --every.')
  sizes = _image_sizes(images_dir, names)
  odd = next((n for n in names if sizes[n] != sizes[names[0]]), None)
  if odd and not per_image_cameras:
    raise DatasetError(f'the images differ in size ({names[0]}: {"x".join(map(str, sizes[names[0]]))}, {odd}: '
                       f'{"x".join(map(str, sizes[odd]))}) and so cannot share one camera: pass '
                       f'--per-image-cameras (or use photos of one size and orientation).')

  matcher = matcher or ('sequential' if is_video else 'exhaustive')
  models = reconstruct(scene_dir, camera_model=camera_model, matcher=matcher,
                       per_image_cameras=per_image_cameras, start=start)
  if not models:
    raise DatasetError(f'the mapper found no model in {len(names)} images of {source}: too few matches. Use '
                       f'more photos with more overlap (each part of the object in 3+ photos from nearby '
                       f'angles), sharp and well lit, of a textured, static object; see {scene_dir}/colmap/.')
  model = max(models.values(), key=lambda m: m.num_reg_images())  # each has >= min_model_size images
  sparse = os.path.join(scene_dir, 'sparse', '0')
  os.makedirs(sparse)
  model.write(sparse)
  if len(models) > 1:
    counts = ', '.join(str(m.num_reg_images()) for m in models.values())
    print(f'warning: the mapper made {len(models)} separate models ({counts} images): the photos fall into '
          f'groups it could not connect. sparse/0 is the largest; all are in '
          f'{os.path.join(scene_dir, "colmap", "models")}/.', file=sys.stderr)
  placed = {model.images[i].name for i in model.reg_image_ids()}
  missing = [n for n in names if n not in placed]
  if missing:
    unregistered = os.path.join(scene_dir, 'unregistered')
    os.makedirs(unregistered)
    for name in missing:
      os.replace(os.path.join(images_dir, name), os.path.join(unregistered, name))
    print(f'warning: {len(missing)} of {len(names)} images could not be placed ({", ".join(missing[:5])}'
          f'{", ..." if len(missing) > 5 else ""}); moved them to {unregistered}/ (the loader wants a pose for '
          f'every image in images/).', file=sys.stderr)
  if camera_model not in PINHOLE_MODELS:
    _log(f'undistorting the images to a pinhole camera ({camera_model} estimated)...', start)
    _undistort(pycolmap, sparse, scene_dir)

  report = {'images': len(names), 'registered': len(placed), 'unregistered': missing, 'matcher': matcher,
            'models': len(models), 'points': model.num_points3D(),
            'reprojection_error_px': model.compute_mean_reprojection_error()}
  _log(f'done: {len(placed)}/{len(names)} images placed, {report["points"]} points, mean reprojection '
       f'error {report["reprojection_error_px"]:.2f} px, model in {sparse}', start)
  return report


def _image_sizes(images_dir, names):
  from PIL import Image  # noqa: PLC0415
  sizes = {}
  for name in names:
    with Image.open(os.path.join(images_dir, name)) as image:
      sizes[name] = image.size
  return sizes


def train_command(scene_dir):
  """The command that trains on the scene at scene_dir."""
  scene_dir = os.path.normpath(scene_dir)
  root, scene = os.path.dirname(scene_dir) or '.', os.path.basename(scene_dir)
  return (f'python main.py --config configs/colmap_fast_cpu.py --config.data.root={shlex.quote(root)} '
          f'--config.data.scene={shlex.quote(scene)}')


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m nerf_jax.sfm', description=__doc__.split('\n\n')[0])
  parser.add_argument('source', help='a folder of photos (sorted by name) or a video file')
  parser.add_argument('--out', required=True, help='the scene folder to write (SCENE)')
  parser.add_argument('--every', type=int, default=1,
                      help='a video: take every Nth frame (default 1; a 30 fps video walked around an '
                           'object: 10-15, some 100-300 frames in all)')
  parser.add_argument('--max-size', type=int, default=DEFAULT_MAX_SIZE,
                      help=f'downscale images to at most this many pixels on their longest side (default '
                           f'{DEFAULT_MAX_SIZE}; 0: keep their size)')
  parser.add_argument('--camera-model', default='PINHOLE', choices=CAMERA_MODELS,
                      help='the camera COLMAP estimates (default PINHOLE); the images of one with distortion '
                           'are then undistorted to a pinhole camera')
  parser.add_argument('--matcher', choices=('exhaustive', 'sequential'),
                      help='exhaustive (every pair) or sequential (neighbours in name order; no loop '
                           'closure); default: exhaustive for photos, sequential for a video')
  parser.add_argument('--per-image-cameras', action='store_true',
                      help='one camera per image (photos from several cameras or zoom levels)')
  parser.add_argument('--overwrite', action='store_true',
                      help=f'replace an earlier reconstruction: SCENE/{{{",".join(OUTPUTS)}}}')
  parser.add_argument('--verbose', action='store_true', help="show COLMAP's own log")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  try:
    run(args.source, args.out, every=args.every, max_size=args.max_size, camera_model=args.camera_model,
        matcher=args.matcher, per_image_cameras=args.per_image_cameras, overwrite=args.overwrite,
        verbose=args.verbose)
  except DatasetError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'Train on it:\n  {train_command(args.out)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
