"""The 'colmap' format: a COLMAP workspace read straight from its sparse model.

Layout: <data.root>/<data.scene>/
  images/  the photos, named as in the model
  images_<data.factor>/ (optional, for data.factor > 1)  downsampled copies, e.g. LLFF's minify
  sparse/0/ (or sparse/ itself)  cameras, images, points3D as .bin or .txt (colmap_model)

The loader:
  1. reads the model; every registered image must be in the images folder and every image there must
     be registered (an unregistered photo is an error, not silently dropped). For data.factor > 1 the
     folder is images_<factor>/ when it holds every registered image; where it is missing or lacks any
     of them, every image is read from images/ instead and resized by 1 / factor (to
     round(H / factor) x round(W / factor), the LLFF loader's rule, by area averaging), all of them so
     that the views share one source, size and filter; the load says so in one printed line
     (image_source);
  2. converts each image's world-to-camera (qvec, tvec), OpenCV axes (x right, y down, z forward), to a
     camera-to-world pose in OpenGL axes (x right, y up, z back): c2w = inv([R | t]) with the camera's
     y and z axes negated (colmap_to_c2w);
  3. normalises the world by a similarity x -> scale * R @ x + translation (a pose's centre c becomes
     scale * R @ c + translation and its axes R @ axes), the same for every split (computed from all
     registered images), chosen per layout (look_at_layout) for what each layout is rendered with:
     - 'inward' (an object capture, rendered like the Blender scenes, whose orbit circles the origin
       with +Z up): R is the smallest rotation (Rodrigues) taking the cameras' mean up vector (their +Y
       axes, averaged) to world +Z, so the orbit is not tilted by COLMAP's arbitrary 'up'; then the
       scene's centre goes to the origin and the cameras' mean distance from it becomes
       CAMERA_RADIUS = 4, as in the Blender scenes (cameras ~4 from an object at the origin), so their
       near/far of 2/6, the orbit and the mesh box of the defaults fit. The centre is the point nearest
       every camera's optical axis (the object everyone looks at; the camera centres' mean would be off
       it for an uneven capture);
     - 'forward' (a forward-facing capture, rendered like LLFF's, with NDC rays when data.ndc): exactly
       the LLFF loader's normalisation (nerf_jax.datasets.llff): the scale puts the nearest view's near
       bound (its 1st-percentile point depth, before the margin) at 1 / llff.BD_FACTOR, then R and
       translation recentre the world so that the average camera (llff.average_pose) is the identity,
       looking down -Z. NDC's frame is then LLFF's: its near plane z = -1 lies in front of every view's
       points, as ndc_rays assumes;
  4. per view near/far: NEAR_MARGIN = 0.9 (LLFF's) x the 1st and 1.1 x the 99th percentile of the
     depths of the sparse points that image observes, robust to a few stray points, in normalised units
     (depths only scale: for 'forward' every near is then >= 0.9 / 0.75 = 1.2, beyond NDC's plane at 1);
  5. scales each camera's intrinsics to the image actually read (images_<factor>/, or images/),
     undistorts SIMPLE_RADIAL, RADIAL and OPENCV images to a pinhole with the same fx, fy, cx, cy (any
     other distorted model is an error: undistort with colmap image_undistorter), composites RGBA on
     white when data.white_bkgd, and resizes (area averaging) by 1 / factor where the photos came from
     images/, and by data.input_ratio, in one step, the intrinsics following;
and splits the images sorted by name: every data.llffhold-th (0, llffhold, ...) is 'test', the rest 'train'.
"""

import dataclasses
import os

import numpy as np

from nerf_jax.cameras.pinhole import angles_from_mean_direction, look_at_centre
from nerf_jax.datasets.blender import area_resize, composite_on_white, decode_image
from nerf_jax.datasets.colmap_model import FIX, model_extension, read_model
# LLFF's normalisation, for forward-facing captures (names, not the package: nerf_jax.datasets imports this).
from nerf_jax.datasets.llff import BD_FACTOR, NEAR_MARGIN, average_pose, split_indices
from nerf_jax.datasets.scene import IMAGE_EXTENSIONS, SceneSplit
from nerf_jax.errors import DatasetError

CAMERA_RADIUS = 4.0  # 'inward': the cameras' mean distance from the scene's centre after normalisation
FAR_MARGIN = 1.1  # far: this times the 99th percentile depth (near: NEAR_MARGIN, LLFF's 0.9, x the 1st)
# Cameras whose axes all pass within this of the common centre, and whose viewing directions spread
# wider than INWARD_SPREAD, look inward; a forward-facing capture's axes are near-parallel.
INWARD_ANGLE, INWARD_SPREAD = 15.0, 20.0  # degrees
UNDISTORT_HINT = ('Undistort the images with `colmap image_undistorter --image_path IMAGES --input_path '
                  'SPARSE --output_path OUT` and point data.root/data.scene at OUT (its cameras are '
                  'PINHOLE).')


def _fail(message):
  raise DatasetError(message)


def colmap_to_c2w(rotation, tvec):
  """Camera-to-world pose in OpenGL camera axes from COLMAP's world-to-camera (R, t) in OpenCV axes.

  rotation: float [3, 3], tvec: float [3] (x_cam = R @ x_world + t) -> float64 [4, 4]
  """
  w2c = np.eye(4)
  w2c[:3, :3], w2c[:3, 3] = rotation, tvec
  # OpenCV's camera (y down, z forward) to OpenGL's (y up, z back): the same camera, y and z negated.
  return np.linalg.inv(w2c) @ np.diag([1.0, -1.0, -1.0, 1.0])


def pinhole_and_distortion(camera, where):
  """A supported camera's pinhole intrinsics (fx, fy, cx, cy) float64 [4], in the camera's own pixels,
  and its distortion as OpenCV's (k1, k2, p1, p2) float64 [4] (zeros: none). Any other model: a
  DatasetError naming the camera (`where`), its model and the fix."""
  p = np.asarray(camera.params, np.float64)
  zeros = np.zeros(4)
  if camera.model == 'SIMPLE_PINHOLE':
    return np.array([p[0], p[0], p[1], p[2]]), zeros
  if camera.model == 'PINHOLE':
    return p[:4].copy(), zeros
  if camera.model == 'SIMPLE_RADIAL':
    return np.array([p[0], p[0], p[1], p[2]]), np.array([p[3], 0.0, 0.0, 0.0])
  if camera.model == 'RADIAL':
    return np.array([p[0], p[0], p[1], p[2]]), np.array([p[3], p[4], 0.0, 0.0])
  if camera.model == 'OPENCV':
    return p[:4].copy(), p[4:8].copy()
  _fail(f'{where}: camera {camera.id} uses the {camera.model} camera model, which this loader does not '
        f'undistort (it does SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV). {UNDISTORT_HINT}')


def distort(x, y, coeffs):
  """OpenCV's radial-tangential distortion of normalised image coordinates (COLMAP's OPENCV model;
  SIMPLE_RADIAL and RADIAL are it with the later coefficients 0; nerfstudio's transforms.json adds k3
  and k4, the r^6 and r^8 terms of the same radial polynomial).

  x, y: float [...] (X/Z, Y/Z in OpenCV axes); coeffs: (k1, k2, p1, p2) or (k1, k2, p1, p2, k3, k4)
  -> distorted x, y: float [...]
  """
  k1, k2, p1, p2, k3, k4 = (*coeffs, 0.0, 0.0)[:6]
  r2 = x * x + y * y
  radial = r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
  return (x + x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
          y + y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y))


def distort_fisheye(x, y, coeffs):
  """OpenCV's fisheye (equidistant) distortion, COLMAP's OPENCV_FISHEYE: a ray at angle theta from the
  axis lands at radius theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8).

  x, y: float [...] (pinhole X/Z, Y/Z); coeffs: (k1, k2, k3, k4) -> distorted x, y: float [...]
  """
  k1, k2, k3, k4 = coeffs
  r = np.sqrt(x * x + y * y)
  theta = np.arctan(r)
  t2 = theta * theta
  theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
  # r -> 0: theta_d / r -> 1 (the centre is not moved).
  ratio = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
  return x * ratio, y * ratio


def bilinear_sample(image, px, py):
  """image: float [H, W, C] sampled at continuous pixel coordinates px, py: float [...] (the top-left
  pixel's centre at (0.5, 0.5)); points outside take the nearest edge value. Returns float32 [..., C]."""
  h, w = image.shape[:2]
  # Pixel centres sit at +0.5: shift to array indices, then clamp, which repeats the edge pixels.
  u = np.clip(px - 0.5, 0.0, w - 1.0)
  v = np.clip(py - 0.5, 0.0, h - 1.0)
  u0 = np.minimum(np.floor(u).astype(np.int64), w - 2) if w > 1 else np.zeros(u.shape, np.int64)
  v0 = np.minimum(np.floor(v).astype(np.int64), h - 2) if h > 1 else np.zeros(v.shape, np.int64)
  u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
  a, b = (u - u0)[..., None], (v - v0)[..., None]
  top = image[v0, u0] * (1 - a) + image[v0, u1] * a
  bottom = image[v1, u0] * (1 - a) + image[v1, u1] * a
  return (top * (1 - b) + bottom * b).astype(np.float32)


def undistort_image(image, intrinsics, coeffs, fisheye=False):
  """The image a pinhole camera with the same (fx, fy, cx, cy) would have taken: each of its pixels
  looks up the distorted image where the distortion moves it (bilinear; outside: the edge value).

  image: float [H, W, C]; intrinsics: (fx, fy, cx, cy) in this image's pixels; coeffs: distort's
  (k1, k2, p1, p2[, k3, k4]), or with fisheye distort_fisheye's (k1, k2, k3, k4)
  returns float32 [H, W, C] (the input unchanged when every coefficient is 0 and not fisheye)
  """
  if not np.any(coeffs) and not fisheye:
    return np.asarray(image, np.float32)
  fx, fy, cx, cy = intrinsics
  h, w = image.shape[:2]
  py, px = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing='ij')
  xd, yd = (distort_fisheye if fisheye else distort)((px - cx) / fx, (py - cy) / fy, coeffs)
  return bilinear_sample(image, fx * xd + cx, fy * yd + cy)


def look_at_layout(poses):
  """(layout, centre): 'inward' and the point nearest every optical axis (least squares) when the cameras
  look at a common centre from spread-out directions, else 'forward' (centre None: parallel axes meet
  nowhere).

  poses: float [N, 4, 4] camera-to-world (OpenGL)
  """
  centre, angles = look_at_centre(poses)
  if np.mean(angles <= INWARD_ANGLE) >= 0.9 and angles_from_mean_direction(poses).max() > INWARD_SPREAD:
    return 'inward', centre
  return 'forward', None


def rotation_to_z(up):
  """The smallest rotation taking the direction `up` (float [3], any length) to +Z (Rodrigues' formula
  about up x Z); a half-turn about X when up points down -Z, the identity when up is zero.
  float64 [3, 3]."""
  up = np.asarray(up, np.float64)
  norm = np.linalg.norm(up)
  if norm < 1e-12:
    return np.eye(3)
  up = up / norm
  axis = np.cross(up, [0.0, 0.0, 1.0])  # sin(angle) times the unit axis
  cos = up[2]
  if cos < -1.0 + 1e-12:
    return np.diag([1.0, -1.0, -1.0])
  k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
  return np.eye(3) + k + k @ k / (1.0 + cos)


def inward_normalisation(poses, centre):
  """(scale, rotation, translation) of an inward capture: the cameras' mean up to +Z, `centre` (float
  [3]) to the origin, the cameras' mean distance from it to CAMERA_RADIUS. poses: float [N, 4, 4]."""
  rotation = rotation_to_z(poses[:, :3, 1].sum(0))
  # max(): cameras all at the centre (a degenerate capture) would otherwise divide by zero.
  scale = CAMERA_RADIUS / max(float(np.mean(np.linalg.norm(poses[:, :3, 3] - centre, axis=-1))), 1e-12)
  return scale, rotation, -scale * rotation @ centre


def forward_normalisation(poses, nearest):
  """(scale, rotation, translation) of a forward-facing capture, LLFF's (llff.load_scene): the nearest
  bound `nearest` (COLMAP units) to 1 / llff.BD_FACTOR, then the average camera to the identity.
  poses: float [N, 4, 4]."""
  scale = 1.0 / (nearest * BD_FACTOR)
  scaled = poses[:, :3, :4].astype(np.float64)
  scaled[:, :, 3] *= scale
  average = average_pose(scaled)  # orthonormal axes: its inverse is the transpose
  rotation = average[:, :3].T
  return scale, rotation, -rotation @ average[:, 3]


@dataclasses.dataclass(frozen=True)
class ColmapScene:
  """Every registered image of a COLMAP workspace, before any pixel is read.

  names: image names (paths under `folder`), sorted; files: the file read for each (same order)
  poses: float64 [N, 4, 4] camera-to-world (OpenGL axes) in COLMAP's world, NOT normalised
  scale, rotation, translation: the normalisation x -> scale * rotation @ x + translation (float,
    float64 [3, 3], float64 [3]): a pose's axes become rotation @ axes and its centre c
    scale * rotation @ c + translation (normalised_poses())
  near, far: float64 [N] per-view depth bounds, normalised units
  cameras: the colmap_model.Camera of each image; layout: 'inward' or 'forward'; sparse_dir: the model
  downscale: 1, or data.factor where `folder` is the full-size images/ read in place of a missing or
    incomplete images_<factor>/ (read_view resizes each photo by 1 / downscale)
  """
  folder: str
  names: tuple
  files: tuple
  poses: np.ndarray
  scale: float
  rotation: np.ndarray
  translation: np.ndarray
  near: np.ndarray
  far: np.ndarray
  cameras: tuple
  layout: str
  sparse_dir: str
  downscale: int = 1

  def normalised_poses(self):
    """float64 [N, 4, 4]: the poses in the loader's world."""
    poses = self.poses.copy()
    poses[:, :3, :3] = self.rotation @ poses[:, :3, :3]
    poses[:, :3, 3] = self.scale * poses[:, :3, 3] @ self.rotation.T + self.translation
    return poses


def find_sparse_dir(scene_dir):
  """sparse/0 when it holds a model, else sparse/ when it does; else a DatasetError."""
  for candidate in (os.path.join(scene_dir, 'sparse', '0'), os.path.join(scene_dir, 'sparse')):
    if model_extension(candidate):
      return candidate
  _fail(f'No COLMAP sparse model in {os.path.join(scene_dir, "sparse", "0")!r} or '
        f'{os.path.join(scene_dir, "sparse")!r} (cameras, images, points3D as .bin or .txt). Run COLMAP '
        f'(feature_extractor, matcher, mapper --output_path {os.path.join(scene_dir, "sparse")}) or set '
        f'data.root/data.scene to a COLMAP workspace.')


def _image_files(folder):
  """Every image under `folder` (subfolders too), as '/'-separated relative paths."""
  found = []
  for parent, _, names in os.walk(folder):
    for name in names:
      if name.lower().endswith(IMAGE_EXTENSIONS):
        found.append(os.path.relpath(os.path.join(parent, name), folder).replace(os.sep, '/'))
  return sorted(found)


def _find_files(folder, names):
  """(files, missing, present): the file in `folder` of each registered name that has one (the same
  name, or the one file with the same name but another extension: downsampled folders often hold PNGs
  of JPEG originals), the names without one, and every image file in the folder."""
  present = _image_files(folder)
  by_stem = {}
  for f in present:
    by_stem.setdefault(os.path.splitext(f)[0], []).append(f)
  files, missing = [], []
  available = set(present)
  for name in names:
    if name in available:
      files.append(name)
    elif len(by_stem.get(os.path.splitext(name)[0], [])) == 1:
      files.append(by_stem[os.path.splitext(name)[0]][0])
    else:
      missing.append(name)
  return files, missing, present


def _match_files(folder, names, images_path):
  """The file of each registered name (_find_files). Missing images and images the model did not
  register are errors."""
  files, missing, present = _find_files(folder, names)
  if not present:
    _fail(f'The images folder {folder!r} holds no images ({", ".join(IMAGE_EXTENSIONS)}); put the photos '
          f'COLMAP reconstructed there.')
  available = set(present)
  if missing:
    _fail(f'{len(missing)} image(s) named in {images_path!r} are missing from {folder!r}, e.g. '
          f'{missing[:3]}: copy them there, or use the images folder COLMAP reconstructed from.')
  unregistered = sorted(available - set(files))
  if unregistered:
    _fail(f'{len(unregistered)} image(s) in {folder!r} were not registered by COLMAP (no pose in '
          f'{images_path!r}), e.g. {unregistered[:3]}: remove them from the folder, or re-run mapping '
          f'so that they are registered.')
  return tuple(files)


_reported = set()  # the fallback lines printed in this process: one per scene, folder and reason


def image_source(scene_dir, factor, names, images_path):
  """(folder, files, downscale): where the registered images `names` are read from. images_<factor>/
  when it holds every one of them (downscale 1); else, for factor > 1, the full-size images/ (downscale
  factor: read_view resizes each by 1 / factor), for every image, not only the missing ones, so that
  all views come from one source through one filter at one size (a mix of another tool's copies and
  photos resized here would differ). The fallback is printed once per scene and reason in a process
  (not once per split); neither folder holding the photos is a DatasetError naming both."""
  wanted = os.path.join(scene_dir, f'images_{factor}' if factor > 1 else 'images')
  if factor == 1:
    return wanted, _match_files(wanted, names, images_path), 1
  full = os.path.join(scene_dir, 'images')
  if os.path.isdir(wanted):
    _, missing, _ = _find_files(wanted, names)
    if not missing:
      return wanted, _match_files(wanted, names, images_path), 1  # unregistered extras: still an error
    why = (f'{wanted!r} lacks {len(missing)} of the {len(names)} images registered in {images_path!r} '
           f'(e.g. {missing[:3]})')
  else:
    why = f'{wanted!r} does not exist'
  lacking = _find_files(full, names)[1] if os.path.isdir(full) else names
  if lacking:
    held = 'does not exist' if not os.path.isdir(full) else f'lacks {len(lacking)} of them'
    _fail(f'data.factor={factor}: {why}, and the full-size {full!r} {held}, so the photos cannot be read '
          f'from either: put the photos COLMAP reconstructed in {full!r} (they are resized by 1/{factor} '
          f'on loading) or complete {wanted!r} (e.g. LLFF\'s minify, or mogrify -resize), or set '
          f'data.factor=1.')
  files = _match_files(full, names, images_path)  # unregistered photos there: an error, as ever
  message = (f'colmap: {why}; reading all {len(names)} images from {full!r} instead, resized by 1/{factor} '
             f'(area averaging).')
  if (full, factor, message) not in _reported:
    _reported.add((full, factor, message))
    print(message, flush=True)
  return full, files, factor


def _observed_points(model):
  """{image id: ids of the 3-D points it observes}: from the images' keypoints, or, for an image
  without them (a text model may leave them out), from the points' tracks."""
  from_tracks = {}
  observed = {}
  for image in model.images.values():
    ids = image.point3D_ids[image.point3D_ids >= 0]
    if not len(ids):
      if not from_tracks:
        for point in model.points3D.values():
          for image_id in set(point.track[:, 0].tolist()):
            from_tracks.setdefault(image_id, []).append(point.id)
        from_tracks = from_tracks or {None: []}  # built once, even when no track names any image
      ids = from_tracks.get(image.id, [])
    observed[image.id] = [i for i in ids if i in model.points3D]
  return observed


def read_scene(scene_dir, factor=1):
  """The registered images of the COLMAP workspace scene_dir with their unnormalised poses, the
  normalisation and the per-view near/far (ColmapScene); reads the model, not the pixels."""
  if not os.path.isdir(scene_dir):
    _fail(f'Scene folder {scene_dir!r} does not exist; pass the folder holding it with '
          f'--config.data.root=PATH and its name with --config.data.scene.')
  if not (isinstance(factor, (int, np.integer)) and factor >= 1):
    _fail(f'data.factor must be an integer >= 1 (images_<factor>/), got {factor!r}.')
  folder = os.path.join(scene_dir, 'images')
  if factor == 1 and not os.path.isdir(folder):
    _fail(f'The images folder {folder!r} does not exist. Put the photos COLMAP reconstructed there.')
  wanted = os.path.join(scene_dir, f'images_{factor}')
  if factor > 1 and not os.path.isdir(wanted) and not os.path.isdir(folder):
    _fail(f'Neither {wanted!r} nor {folder!r} exists: put the photos COLMAP reconstructed in {folder!r} '
          f'(they are resized by 1/{factor} on loading), or their downsampled copies in {wanted!r}, or set '
          f'data.factor=1.')
  sparse_dir = find_sparse_dir(scene_dir)
  model = read_model(sparse_dir)
  ext = model_extension(sparse_dir)
  images_path = os.path.join(sparse_dir, 'images' + ext)
  if not model.images:
    _fail(f'{images_path!r} registers no images; re-run mapping.')
  if not model.points3D:
    _fail(f'{os.path.join(sparse_dir, "points3D" + ext)!r} has no points: the near/far bounds come from '
          f'them. Re-run mapping (or colmap point_triangulator).')
  images = sorted(model.images.values(), key=lambda i: i.name)
  names = tuple(i.name for i in images)
  folder, files, downscale = image_source(scene_dir, factor, names, images_path)
  poses, cameras = [], []
  for image in images:
    where = f'{images_path!r}: image {image.id} ({image.name})'
    if not (np.all(np.isfinite(image.qvec)) and np.all(np.isfinite(image.tvec))
            and np.linalg.norm(image.qvec) > 1e-8):
      _fail(f'{where} has a pose that is not finite or a zero quaternion: the model is garbled. '
            f'{FIX}')
    camera = model.cameras[image.camera_id]
    pinhole_and_distortion(camera, f'{where} (camera in {os.path.join(sparse_dir, "cameras" + ext)!r})')
    poses.append(colmap_to_c2w(image.rotation(), image.tvec))
    cameras.append(camera)
  poses = np.stack(poses)
  xyz = np.stack([p.xyz for p in model.points3D.values()])
  # Depth bounds in COLMAP's units first (a similarity only scales depths): the forward layout's scale
  # depends on them.
  bounds = []
  observed = _observed_points(model)
  for image, pose in zip(images, poses):
    ids = observed[image.id]
    points = np.stack([model.points3D[i].xyz for i in ids]) if ids else xyz
    depths = (points - pose[:3, 3]) @ -pose[:3, 2]  # along the camera's -Z, its viewing axis
    depths = depths[depths > 0]
    if not len(depths):
      depths = (xyz - pose[:3, 3]) @ -pose[:3, 2]
      depths = depths[depths > 0]
    if not len(depths):
      _fail(f'{images_path!r}: no sparse point lies in front of image {image.id} ({image.name}), so its '
            f'near/far cannot be set: its pose is wrong. Re-run mapping.')
    bounds.append((np.percentile(depths, 1), np.percentile(depths, 99)))
  bounds = np.array(bounds)
  layout, centre = look_at_layout(poses)
  if layout == 'inward':
    scale, rotation, translation = inward_normalisation(poses, centre)
  else:
    scale, rotation, translation = forward_normalisation(poses, bounds[:, 0].min())
  return ColmapScene(folder=folder, names=names, files=files, poses=poses, scale=scale, rotation=rotation,
                     translation=translation, near=NEAR_MARGIN * scale * bounds[:, 0],
                     far=FAR_MARGIN * scale * bounds[:, 1], cameras=tuple(cameras), layout=layout,
                     sparse_dir=sparse_dir, downscale=downscale)


def read_view(scene, index, *, input_ratio=1.0, white_bkgd=True):
  """One view's pixels, undistorted and resized, with its pinhole intrinsics at that size
  (camera_pixels). returns rgb float32 [H, W, 3], alpha float32 [H, W] or None, intrinsics float64 [4]
  """
  camera = scene.cameras[index]
  pinhole, coeffs = pinhole_and_distortion(camera, repr(scene.sparse_dir))
  return camera_pixels(os.path.join(scene.folder, scene.files[index]), (camera.width, camera.height),
                       pinhole, coeffs, f'its camera {camera.id} in {scene.sparse_dir!r}',
                       downscale=scene.downscale, input_ratio=input_ratio, white_bkgd=white_bkgd)


def camera_pixels(path, calibrated, pinhole, coeffs, camera_name, *, fisheye=False, downscale=1,
                  input_ratio=1.0, white_bkgd=True):
  """The photo at `path`, undistorted and resized, with its pinhole intrinsics at that size: what the
  COLMAP and transforms.json loaders share.

  calibrated: (width, height) the camera's intrinsics pinhole (fx, fy, cx, cy) and distortion coeffs
  (undistort_image's, fisheye or not) are given at; the file may be an evenly downsampled copy.
  camera_name: names the camera in an error. downscale: resize by 1 / downscale (a full-size photo read
  in place of a missing images_<factor>/ copy), then by input_ratio, in one area resize.
  returns rgb float32 [H, W, 3], alpha float32 [H, W] or None (no alpha channel), intrinsics float64 [4]
  """
  image = decode_image(path)
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.shape[-1] not in (3, 4):
    _fail(f'Image {path!r} has shape {image.shape}; expected RGB or RGBA.')
  h, w = image.shape[:2]
  scale_x, scale_y = w / calibrated[0], h / calibrated[1]
  # Sizes are whole pixels: the two scales may differ by rounding (half a pixel each way), not more.
  if abs(scale_x - scale_y) > 0.5 / w + 0.5 / h + 1e-9:
    _fail(f'Image {path!r} is {w}x{h} but {camera_name} is {calibrated[0]}x{calibrated[1]}: the two sides '
          f'scale differently ({scale_x:.4g} vs {scale_y:.4g}), so the intrinsics cannot follow (a rotated '
          f'or cropped photo?). Use the images the poses were computed from, resized evenly.')
  intrinsics = np.asarray(pinhole, np.float64) * [scale_x, scale_y, scale_x, scale_y]
  alpha = image[..., 3:] if image.shape[-1] == 4 else None
  # Composite at full resolution, before any resampling blends the undefined colour of transparent
  # pixels into the edges (as the Blender loader does).
  rgb = composite_on_white(image) if alpha is not None and white_bkgd else image[..., :3]
  pixels = rgb if alpha is None else np.concatenate([rgb, alpha], -1)
  pixels = undistort_image(pixels, intrinsics, coeffs, fisheye=fisheye)
  # A photo read from images/ in place of images_<factor>/ (downscale > 1) gets the size a copy would
  # have (round(H / factor), LLFF's rule), then input_ratio as ever: one area resize, to the size the two
  # resizes would give.
  base_h, base_w = max(1, round(h / downscale)), max(1, round(w / downscale))
  out_h, out_w = round(base_h * input_ratio), round(base_w * input_ratio)
  if (out_h, out_w) != (h, w):
    pixels = area_resize(pixels, out_h, out_w)
    intrinsics = intrinsics * [out_w / w, out_h / h, out_w / w, out_h / h]
  return pixels[..., :3], (pixels[..., 3] if alpha is not None else None), intrinsics


def chosen_views(indices, views, split, scene_dir):
  """indices int [N] of a split, narrowed to its views `views` (positions in it; all when None); a view
  out of range is a DatasetError naming the split and how many views it has."""
  if views is None:
    return indices
  for v in views:
    if not 0 <= v < len(indices):
      _fail(f'View {v} does not exist: split {split!r} of {scene_dir!r} has {len(indices)} views '
            f'(0..{len(indices) - 1}).')
  return indices[list(views)]


def stacked_views(indices, read, describe):
  """The views read(i) -> (rgb [H, W, 3], alpha [H, W] or None, intrinsics [4]) for i in indices, stacked:
  (images float32 [N, H, W, 3], alphas float32 [N, H, W] (1 where a view has none) or None where no view
  has one, intrinsics float32 [N, 4]). Views of another size than the first are a DatasetError naming
  both (describe(i): 'Image PATH', say)."""
  images, alphas, intrinsics = [], [], []
  for i in indices:
    rgb, alpha, k = read(i)
    if images and rgb.shape != images[0].shape:
      _fail(f'{describe(i)} is {rgb.shape[1]}x{rgb.shape[0]} after loading but {describe(indices[0])} is '
            f'{images[0].shape[1]}x{images[0].shape[0]}: the images of a split must share one size. Resize '
            f'it to match (its camera\'s intrinsics may differ).')
    images.append(rgb)
    alphas.append(alpha)
    intrinsics.append(k)
  if all(a is None for a in alphas):
    alphas = None
  else:
    alphas = np.stack([np.ones(im.shape[:2], np.float32) if a is None else a for a, im in zip(alphas, images)])
  return np.stack(images).astype(np.float32), alphas, np.stack(intrinsics).astype(np.float32)


def load_split(root, scene, split, *, factor=1, llffhold=8, input_ratio=1.0, white_bkgd=True, views=None):
  """Split `split` of the COLMAP workspace root/scene, in the normalised world (module docstring).

  views: indices within the split (all when None). Returns SceneSplit with per-view intrinsics,
  near/far, and alphas where the images have an alpha channel (1 for any that do not).
  """
  if not 0.0 < input_ratio <= 1.0:
    _fail(f'data.input_ratio must be in (0, 1] (a downsampling factor), got {input_ratio}.')
  scene_dir = os.path.join(root, scene)
  colmap_scene = read_scene(scene_dir, factor)
  indices = chosen_views(split_indices(len(colmap_scene.names), split, llffhold, repr(scene_dir)), views,
                         split, scene_dir)
  images, alphas, intrinsics = stacked_views(
      indices, lambda i: read_view(colmap_scene, i, input_ratio=input_ratio, white_bkgd=white_bkgd),
      lambda i: f'Image {os.path.join(colmap_scene.folder, colmap_scene.files[i])!r}')
  return SceneSplit(images=images, poses=colmap_scene.normalised_poses()[indices].astype(np.float32),
                    intrinsics=intrinsics, names=tuple(colmap_scene.names[i] for i in indices), alphas=alphas,
                    near=colmap_scene.near[indices].astype(np.float32),
                    far=colmap_scene.far[indices].astype(np.float32), layout=colmap_scene.layout)


def load(data_config, split, views=None):
  """The 'colmap' format: split `split` of data_config.scene under data_config.root (load_split)."""
  d = data_config
  return load_split(d.root, d.scene, split, factor=d.factor, llffhold=d.llffhold, input_ratio=d.input_ratio,
                    white_bkgd=d.white_bkgd, views=views)
