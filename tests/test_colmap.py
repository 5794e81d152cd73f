"""The COLMAP format: the built-in spheres written as a COLMAP workspace with known poses, intrinsics and
sparse points (in a rotated, scaled, shifted world, as a reconstruction's arbitrary gauge would be),
read back by the loader and compared with the truth; the model files' round trips; undistortion; and
the bad inputs, each a DatasetError naming the file."""

import os
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from configs import default
from nerf_jax import datasets
from nerf_jax.cameras import pinhole as camera_lib, rotations
from nerf_jax.datasets import blender, colmap, colmap_model, generated, llff
from nerf_jax.errors import DatasetError
from tests.conftest import override

SIZE = 32
FOCAL = 0.5 * SIZE / np.tan(0.5 * generated.CAMERA_ANGLE_X)
NUM_VIEWS = 6


def _axis_angle(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


# COLMAP's world = GAUGE_S * GAUGE_R @ true world + GAUGE_T.
GAUGE_R = _axis_angle([0.3, -1.0, 0.5], 2.1)
GAUGE_S = 0.37
GAUGE_T = np.array([1.5, -2.0, 0.7])


def to_colmap_world(x):
  return GAUGE_S * np.asarray(x) @ GAUGE_R.T + GAUGE_T


def colmap_extrinsics(pose):
  """(qvec, tvec) COLMAP stores for a true camera-to-world (OpenGL) pose, derived here from the
  definitions (x_cam = R x_world + t, camera axes x right, y down, z forward), not from the loader."""
  rotation_c2w = GAUGE_R @ pose[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # OpenGL axes -> OpenCV axes
  rotation = rotation_c2w.T
  return rotations.rotmat_to_qvec(rotation), -rotation @ to_colmap_world(pose[:3, 3])


def sphere_points(per_sphere=40, seed=0):
  """Points on the spheres' surfaces: (xyz float64 [P, 3], outward normals float64 [P, 3])."""
  rng = np.random.default_rng(seed)
  xyz, normals = [], []
  for centre, radius, _, _ in generated.SPHERES:
    n = rng.normal(size=(per_sphere, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    xyz.append(np.asarray(centre) + radius * n)
    normals.append(n)
  return np.concatenate(xyz), np.concatenate(normals)


def visible(pose, focal, xyz, normals):
  """Which points a pinhole camera at `pose` sees inside its image, and their pixel (x, y) and depth."""
  cam = (xyz - pose[:3, 3]) @ pose[:3, :3]
  depth = -cam[:, 2]
  px = focal * cam[:, 0] / depth + 0.5 * SIZE
  py = -focal * cam[:, 1] / depth + 0.5 * SIZE
  inside = (depth > 0) & (px > 0) & (px < SIZE) & (py > 0) & (py < SIZE)
  facing = np.sum(normals * (pose[:3, 3] - xyz), -1) > 0
  # Not hidden behind another sphere: the first hit along the ray to the point is the point.
  direction = xyz - pose[:3, 3]
  first = np.full(len(xyz), np.inf)
  for centre, radius, _, _ in generated.SPHERES:
    oc = pose[:3, 3] - np.asarray(centre)
    a, b, c = np.sum(direction**2, -1), direction @ oc, oc @ oc - radius**2
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    first = np.where((disc > 0) & (t > 1e-9), np.minimum(first, t), first)
  unoccluded = first > 1 - 1e-6
  return inside & facing & unoccluded, px, py, depth


def write_workspace(path, *, ext='.bin', camera_models=None, images=None):
  """A COLMAP workspace of the spheres at `path` (images/, sparse/0/) and the truth it was made from.

  camera_models: {view: (model name, params)} overriding the default cameras (even views PINHOLE with
  FOCAL, odd views SIMPLE_PINHOLE with 1.25 x FOCAL); images: {view: uint8 image} replacing renders.
  """
  poses = [camera_lib.look_at_pose(p) for p in generated.camera_positions(NUM_VIEWS, 5)]
  focals = [FOCAL if v % 2 == 0 else 1.25 * FOCAL for v in range(NUM_VIEWS)]
  xyz, normals = sphere_points()
  cameras = {1: colmap_model.Camera(1, 'PINHOLE', SIZE, SIZE, np.array([FOCAL, FOCAL, 16.0, 16.0])),
             2: colmap_model.Camera(2, 'SIMPLE_PINHOLE', SIZE, SIZE, np.array([1.25 * FOCAL, 16.0, 16.0]))}
  camera_of = [1 if v % 2 == 0 else 2 for v in range(NUM_VIEWS)]
  for v, (model, params) in (camera_models or {}).items():
    cameras[10 + v] = colmap_model.Camera(10 + v, model, SIZE, SIZE, np.asarray(params, np.float64))
    camera_of[v] = 10 + v
  os.makedirs(os.path.join(path, 'images'), exist_ok=True)
  tracks = {i: [] for i in range(len(xyz))}
  model_images, seen, depths = {}, [], []
  for v in reversed(range(NUM_VIEWS)):  # written out of name order: the loader sorts by name
    image_id = 7 + 3 * v  # ids are not indices
    see, px, py, depth = visible(poses[v], focals[v], xyz, normals)
    ids = np.nonzero(see)[0]
    # A keypoint observing no 3-D point (-1) first, as real models have.
    xys = np.concatenate([[[1.0, 2.0]], np.stack([px[ids], py[ids]], -1)])
    point_ids = np.concatenate([[-1], 100 + ids])
    for k, i in enumerate(ids):
      tracks[i].append((image_id, k + 1))
    qvec, tvec = colmap_extrinsics(poses[v])
    name = f'view_{v:02d}.png'
    model_images[image_id] = colmap_model.Image(image_id, qvec, tvec, camera_of[v], name, xys, point_ids)
    pixels = images[v] if images and v in images else generated.render_view(poses[v], SIZE, SIZE, focals[v])
    iio.imwrite(os.path.join(path, 'images', name), pixels)
    seen.insert(0, ids)
    depths.insert(0, depth[ids])
  points = {100 + i: colmap_model.Point3D(100 + i, to_colmap_world(xyz[i]), np.array([200, 10, 10], np.uint8),
                                          0.5, np.array(tracks[i], np.int64).reshape(-1, 2))
            for i in range(len(xyz)) if tracks[i]}
  colmap_model.write_model(colmap_model.Model(cameras, model_images, points),
                           os.path.join(path, 'sparse', '0'), ext)
  return {'poses': poses, 'focals': focals, 'depths': depths, 'seen': seen}


@pytest.fixture(scope='module')
def workspaces(tmp_path_factory):
  """root holding 'bin' and 'txt', the same workspace with a binary and a text model; and the truth."""
  root = tmp_path_factory.mktemp('colmap')
  truth = write_workspace(str(root / 'bin'), ext='.bin')
  write_workspace(str(root / 'txt'), ext='.txt')
  return str(root), truth


@pytest.fixture
def copy(workspaces, tmp_path):
  """A fresh copy of the binary workspace to break: (root, scene dir)."""
  shutil.copytree(os.path.join(workspaces[0], 'bin'), tmp_path / 'scene')
  return str(tmp_path), str(tmp_path / 'scene')


def test_quaternions_against_a_known_rotation_and_round_trip():
  # (cos 45, 0, 0, sin 45): a quarter turn about +z takes x to y (Hamilton convention, as COLMAP's).
  quarter = rotations.qvec_to_rotmat([np.sqrt(0.5), 0, 0, np.sqrt(0.5)])
  np.testing.assert_allclose(quarter, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
  rng = np.random.default_rng(0)
  matrices = [_axis_angle(rng.normal(size=3), rng.uniform(0, np.pi)) for _ in range(20)]
  matrices += [_axis_angle([1, 2, 3], np.pi - 1e-9), np.diag([1.0, -1.0, -1.0]), np.eye(3)]  # half-turns
  for r in matrices:
    q = rotations.rotmat_to_qvec(r)
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
    np.testing.assert_allclose(rotations.qvec_to_rotmat(q), r, atol=1e-9)


@pytest.mark.parametrize('ext', ['.bin', '.txt'])
def test_model_files_round_trip(tmp_path, ext):
  cameras = {3: colmap_model.Camera(3, 'OPENCV', 640, 480, np.array([500.5, 501.25, 320.1, 239.7, -0.1, 0.01,
                                                                      1e-3, -2e-4]))}
  images = {5: colmap_model.Image(5, np.array([0.9, 0.1, -0.3, 0.2]), np.array([0.1, 1 / 3, -7.0]), 3,
                                  'sub/a b.jpg', np.array([[1.5, 2.25], [3.0, 4.0]]), np.array([-1, 42])),
            9: colmap_model.Image(9, np.array([1.0, 0, 0, 0]), np.zeros(3), 3, 'z.jpg')}  # no keypoints
  points = {42: colmap_model.Point3D(42, np.array([0.1, np.pi, -1e-17]), np.array([1, 2, 255], np.uint8),
                                     0.25, np.array([[5, 1]]))}
  colmap_model.write_model(colmap_model.Model(cameras, images, points), str(tmp_path), ext)
  back = colmap_model.read_model(str(tmp_path))
  assert back.cameras.keys() == cameras.keys() and back.images.keys() == images.keys()
  c = back.cameras[3]
  assert (c.model, c.width, c.height) == ('OPENCV', 640, 480)
  np.testing.assert_array_equal(c.params, cameras[3].params)  # bit for bit, text too
  for i, image in images.items():
    b = back.images[i]
    assert (b.name, b.camera_id) == (image.name, image.camera_id)
    for field in ('qvec', 'tvec', 'xys', 'point3D_ids'):
      np.testing.assert_array_equal(getattr(b, field), getattr(image, field).reshape(getattr(b, field).shape))
  p = back.points3D[42]
  np.testing.assert_array_equal(p.xyz, points[42].xyz)
  np.testing.assert_array_equal(p.rgb, points[42].rgb)
  np.testing.assert_array_equal(p.track, points[42].track)
  assert p.error == 0.25


def test_axis_conversion_puts_a_point_in_front_of_a_colmap_camera_on_its_pixel():
  # Independent fact: COLMAP projects x_cam = R X + t (z > 0 in front) to (fx x/z + cx, fy y/z + cy).
  rng = np.random.default_rng(1)
  rotation = _axis_angle(rng.normal(size=3), 1.3)
  tvec = rng.normal(size=3)
  x_cam = np.array([0.4, -0.3, 2.5])  # right of, above (y down) and 2.5 in front of the camera
  point = rotation.T @ (x_cam - tvec)
  intrinsics = np.array([300.0, 310.0, 160.0, 120.0])
  u = intrinsics[0] * x_cam[0] / x_cam[2] + intrinsics[2]
  v = intrinsics[1] * x_cam[1] / x_cam[2] + intrinsics[3]
  pose = colmap.colmap_to_c2w(rotation, tvec)
  ours = np.linalg.inv(pose) @ np.append(point, 1.0)
  np.testing.assert_allclose(ours[:3], [0.4, 0.3, -2.5], atol=1e-12)  # OpenGL: up is +y, forward is -z
  # The ray through that pixel (pixel coordinates put the top-left centre at 0.5: index = coord - 0.5).
  rays = camera_lib.rays_from_pixels(pose.astype(np.float32), intrinsics.astype(np.float32),
                                     np.float32(v - 0.5), np.float32(u - 0.5))
  np.testing.assert_allclose(np.asarray(rays.origins) + 2.5 * np.asarray(rays.directions), point, atol=1e-5)


@pytest.mark.parametrize('scene', ['bin', 'txt'])
def test_loader_recovers_the_true_poses_intrinsics_rays_and_images(workspaces, scene):
  root, truth = workspaces
  raw = colmap.read_scene(os.path.join(root, scene))
  assert raw.layout == 'inward' and raw.names == tuple(f'view_{v:02d}.png' for v in range(NUM_VIEWS))
  # Unnormalised: COLMAP's world (the gauge applied to the true poses).
  for pose, true in zip(raw.poses, truth['poses']):
    np.testing.assert_allclose(pose[:3, :3], GAUGE_R @ true[:3, :3], atol=1e-9)
    np.testing.assert_allclose(pose[:3, 3], to_colmap_world(true[:3, 3]), atol=1e-9)
  # The normalisation: a rotation, the centre every camera looks at (the true origin) to the origin, the
  # cameras' mean distance from it to 4 (the true cameras are at 4, so the scale undoes GAUGE_S).
  r = raw.rotation
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
  assert np.linalg.det(r) > 0
  np.testing.assert_allclose(raw.scale, 1 / GAUGE_S, rtol=1e-6)
  np.testing.assert_allclose(raw.scale * r @ GAUGE_T + raw.translation, 0, atol=1e-6)

  split = colmap.load_split(root, scene, 'train', llffhold=0)
  assert split.images.shape == (NUM_VIEWS, SIZE, SIZE, 3) and split.layout == 'inward'
  centres = (split.poses[:, :3, 3] - raw.translation) @ r / raw.scale  # undo the normalisation ...
  for v, true in enumerate(truth['poses']):
    back = GAUGE_R.T @ (centres[v] - GAUGE_T) / GAUGE_S  # ... and the gauge
    np.testing.assert_allclose(back, true[:3, 3], atol=1e-5)
    np.testing.assert_allclose(GAUGE_R.T @ r.T @ split.poses[v, :3, :3], true[:3, :3], atol=1e-5)
    np.testing.assert_allclose(split.intrinsics[v], [truth['focals'][v]] * 2 + [16, 16], rtol=1e-6)
    # Rays through some pixels against the independent renderer's, carried by the same similarity.
    origins, directions = generated.pixel_rays(true, SIZE, SIZE, truth['focals'][v])
    rows, cols = np.array([0, 5, 16, 31]), np.array([31, 0, 16, 7])
    rays = camera_lib.rays_from_pixels(split.poses[v], split.intrinsics[v], rows, cols)
    expected = raw.scale * to_colmap_world(origins[rows, cols]) @ r.T + raw.translation
    np.testing.assert_allclose(rays.origins, expected, atol=1e-5)
    np.testing.assert_allclose(rays.directions, directions[rows, cols] @ GAUGE_R.T @ r.T, atol=1e-5)
    # Pixels: the RGBA render composited on white, its alpha kept.
    rgba = generated.render_view(true, SIZE, SIZE, truth['focals'][v]).astype(np.float32) / 255
    np.testing.assert_allclose(split.images[v], blender.composite_on_white(rgba), atol=1e-6)
    np.testing.assert_allclose(split.alphas[v], rgba[..., 3], atol=1e-6)
    # near/far bracket the depths of the points this view sees, in normalised units.
    depths = truth['depths'][v] * GAUGE_S * raw.scale
    assert len(depths) > 10 and 0 < split.near[v] < depths.min() and depths.max() < split.far[v]
    assert split.near[v] > 0.8 * depths.min() and split.far[v] < 1.25 * depths.max()  # and are tight


def test_inward_capture_is_turned_up_to_z_and_centred(workspaces):
  root, _ = workspaces
  raw = colmap.read_scene(os.path.join(root, 'bin'))
  poses = raw.normalised_poses()
  up = poses[:, :3, 1].sum(0)
  np.testing.assert_allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-6)  # the orbit's up, not COLMAP's
  # The smallest such rotation: by the angle between the mean up and +Z (in COLMAP's world), no more.
  colmap_up = raw.poses[:, :3, 1].sum(0)
  angle = np.arccos(np.clip((np.trace(raw.rotation) - 1) / 2, -1, 1))
  np.testing.assert_allclose(angle, np.arccos(colmap_up[2] / np.linalg.norm(colmap_up)), atol=1e-9)
  layout, centre = colmap.look_at_layout(poses)
  assert layout == 'inward'
  np.testing.assert_allclose(centre, 0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(poses[:, :3, 3], axis=-1).mean(), colmap.CAMERA_RADIUS, rtol=1e-9)


def test_rotation_to_z_is_a_rotation_taking_the_direction_to_z():
  rng = np.random.default_rng(3)
  for up in [*rng.normal(size=(5, 3)), [0, 0, 2.0], [0, 0, -1.0], [1e-9, 0, -1.0]]:
    r = colmap.rotation_to_z(up)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) > 0
    np.testing.assert_allclose(r @ up, [0, 0, np.linalg.norm(up)], atol=1e-9)


def test_forward_facing_capture_is_normalised_as_llff(tmp_path):
  # Five near-parallel cameras in front of points 5 to 9 away (in a frame where they look down +z),
  # written in a rotated, scaled, shifted world; the images have no keypoints, so what each sees comes
  # from the points' tracks.
  rng = np.random.default_rng(2)
  centres = np.array([[-1.0, 0, 0], [1, 0, 0], [0, 0.5, 0], [0, -0.5, 0], [0.3, 0.2, 0.1]])
  tilts = [_axis_angle(rng.normal(size=3), 0.05) for _ in centres]  # world-to-camera, a little apart
  xyz = np.stack([rng.uniform(-2, 2, 50), rng.uniform(-2, 2, 50), rng.uniform(5, 9, 50)], -1)
  # COLMAP's world = GAUGE_S * GAUGE_R @ x + GAUGE_T: x_cam = tilt (x - c) = tilt GAUGE_R^T (x' - GAUGE_T) /
  # GAUGE_S - tilt c, COLMAP's (R, t) times GAUGE_S (camera units follow the world's).
  cameras = {1: colmap_model.Camera(1, 'PINHOLE', 4, 4, np.array([4.0, 4.0, 2.0, 2.0]))}
  images = {i + 1: colmap_model.Image(i + 1, rotations.rotmat_to_qvec(tilt @ GAUGE_R.T),
                                      -tilt @ (GAUGE_R.T @ GAUGE_T + GAUGE_S * c), 1, f'{i}.png')
            for i, (c, tilt) in enumerate(zip(centres, tilts))}
  track = np.array([[i + 1, 0] for i in range(len(centres))])
  points = {j: colmap_model.Point3D(j, to_colmap_world(p), np.zeros(3, np.uint8), 0.1, track)
            for j, p in enumerate(xyz)}
  colmap_model.write_model(colmap_model.Model(cameras, images, points), str(tmp_path / 'fw' / 'sparse'), '.txt')
  os.makedirs(tmp_path / 'fw' / 'images')
  for image in images.values():
    iio.imwrite(tmp_path / 'fw' / 'images' / image.name, np.zeros((4, 4, 3), np.uint8))
  raw = colmap.read_scene(str(tmp_path / 'fw'))  # sparse/ itself holds the model here
  assert raw.layout == 'forward'
  np.testing.assert_allclose(raw.poses[:, :3, 3], to_colmap_world(centres), atol=1e-9)
  poses = raw.normalised_poses()
  # LLFF's frame: the average camera of all images is the identity (looking down -Z) ...
  np.testing.assert_allclose(llff.average_pose(poses), np.eye(3, 4), atol=1e-5)
  # ... the same poses llff.recentre gives, after LLFF's scale ...
  scaled = raw.poses[:, :3, :4].copy()
  scaled[:, :, 3] *= raw.scale
  np.testing.assert_allclose(poses[:, :3, :4], llff.recentre(scaled), atol=1e-9)
  # ... which puts the nearest bound (before the margin) at 1 / BD_FACTOR: every view's near beyond
  # NDC's near plane at 1.
  np.testing.assert_allclose(raw.near.min() / colmap.NEAR_MARGIN, 1 / llff.BD_FACTOR, rtol=1e-9)
  assert np.all(raw.near > 1)
  # near/far bracket each view's depths, in normalised units.
  cam = np.einsum('nij,npj->npi', np.stack(tilts), xyz[None] - centres[:, None])
  depths = raw.scale * GAUGE_S * cam[..., 2]
  assert np.all(raw.near < depths.min(1)) and np.all(raw.far > depths.max(1))
  split = colmap.load_split(str(tmp_path), 'fw', 'train', llffhold=0)
  assert split.layout == 'forward'
  np.testing.assert_allclose(split.poses, poses, atol=1e-6)


def test_binary_and_text_models_load_identically(workspaces):
  root, _ = workspaces
  for split in ('train', 'test'):
    a, b = (colmap.load_split(root, scene, split, llffhold=3) for scene in ('bin', 'txt'))
    for field in ('images', 'poses', 'intrinsics', 'alphas', 'near', 'far'):
      np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.names == b.names


def test_splits_hold_out_every_llffhold_th_image_and_views_select_within(workspaces):
  root, _ = workspaces
  config = override(default.get_config(), **{'data.format': 'colmap', 'data.root': root, 'data.scene': 'bin',
                                             'data.llffhold': 3})
  test = datasets.load_split(config.data, 'test')
  train = datasets.load_split(config.data, 'train', views=[1, 3])
  assert test.names == ('view_00.png', 'view_03.png')
  assert train.names == ('view_02.png', 'view_05.png')
  with pytest.raises(DatasetError, match="no split 'val'.*'train', 'test'"):
    datasets.load_split(config.data, 'val')
  with pytest.raises(DatasetError, match="Split 'test'.*empty.*llffhold=0"):
    colmap.load_split(root, 'bin', 'test', llffhold=0)


def test_factor_folder_and_input_ratio_scale_the_intrinsics(copy, workspaces):
  root, scene_dir = copy
  os.makedirs(os.path.join(scene_dir, 'images_2'))
  for name in os.listdir(os.path.join(scene_dir, 'images')):
    image = iio.imread(os.path.join(scene_dir, 'images', name)).astype(np.float32) / 255
    small = np.round(blender.area_resize(image, SIZE // 2, SIZE // 2) * 255).astype(np.uint8)
    # Same stem, another extension (LLFF's downsampled folders hold PNGs of JPEG photos): matched.
    iio.imwrite(os.path.join(scene_dir, 'images_2', name.replace('.png', '.PNG')), small)
  full = colmap.load_split(root, 'scene', 'train', llffhold=0)
  halved = colmap.load_split(root, 'scene', 'train', llffhold=0, factor=2)
  ratio = colmap.load_split(root, 'scene', 'train', llffhold=0, input_ratio=0.5)
  assert halved.images.shape[1:3] == ratio.images.shape[1:3] == (SIZE // 2, SIZE // 2)
  np.testing.assert_allclose(halved.intrinsics, full.intrinsics / 2, rtol=1e-6)
  np.testing.assert_allclose(ratio.intrinsics, full.intrinsics / 2, rtol=1e-6)
  np.testing.assert_array_equal(halved.poses, full.poses)


def _fallback_lines(capsys):
  return [line for line in capsys.readouterr().out.splitlines() if line.startswith('colmap: ')]


def test_missing_factor_folder_falls_back_to_images_resized_and_says_so_once(copy, capsys):
  root, scene_dir = copy  # images/ only, no images_2/
  full = colmap.load_split(root, 'scene', 'train', llffhold=3)
  ratio = colmap.load_split(root, 'scene', 'train', llffhold=3, input_ratio=0.5)
  capsys.readouterr()
  train = colmap.load_split(root, 'scene', 'train', llffhold=3, factor=2)
  test = colmap.load_split(root, 'scene', 'test', llffhold=3, factor=2)
  assert train.images.shape[1:3] == test.images.shape[1:3] == (SIZE // 2, SIZE // 2)
  # The photos of images/ resized by 1/2 (area averaging), intrinsics halved with them: what input_ratio
  # 0.5 makes of the full-size photos.
  np.testing.assert_array_equal(train.images, ratio.images)
  np.testing.assert_allclose(train.intrinsics, full.intrinsics / 2, rtol=1e-6)
  np.testing.assert_array_equal(train.poses, full.poses)
  lines = _fallback_lines(capsys)  # once for the scene, not once per split
  assert len(lines) == 1, lines
  images, images_2 = os.path.join(scene_dir, 'images'), os.path.join(scene_dir, 'images_2')
  assert lines[0] == (f"colmap: {images_2!r} does not exist; reading all {NUM_VIEWS} images from {images!r} "
                      f"instead, resized by 1/2 (area averaging).")
  both = colmap.load_split(root, 'scene', 'train', llffhold=3, factor=2, input_ratio=0.5)  # 1/2, then 1/2
  assert both.images.shape[1:3] == (SIZE // 4, SIZE // 4)
  np.testing.assert_allclose(both.intrinsics, full.intrinsics / 4, rtol=1e-6)


def test_incomplete_factor_folder_falls_back_for_every_image(copy, capsys):
  root, scene_dir = copy
  os.makedirs(os.path.join(scene_dir, 'images_2'))
  black = np.zeros((SIZE // 2, SIZE // 2, 3), np.uint8)  # copies that are told apart from the fallback
  for v in range(NUM_VIEWS):
    if v != 4:
      iio.imwrite(os.path.join(scene_dir, 'images_2', f'view_{v:02d}.png'), black)
  ratio = colmap.load_split(root, 'scene', 'train', llffhold=0, input_ratio=0.5)
  capsys.readouterr()
  # One copy missing: every image comes from images/ (one source, one filter, one size), none of the
  # copies, so the views stay consistent.
  split = colmap.load_split(root, 'scene', 'train', llffhold=0, factor=2)
  np.testing.assert_array_equal(split.images, ratio.images)
  np.testing.assert_allclose(split.intrinsics, ratio.intrinsics, rtol=1e-6)
  lines = _fallback_lines(capsys)
  assert len(lines) == 1 and "images_2' lacks 1 of the 6 images registered in" in lines[0], lines
  assert "['view_04.png']" in lines[0]
  assert f"reading all 6 images from {os.path.join(scene_dir, 'images')!r}" in lines[0]
  # Complete, the copies are read as they are, without a word.
  iio.imwrite(os.path.join(scene_dir, 'images_2', 'view_04.png'), black)
  split = colmap.load_split(root, 'scene', 'train', llffhold=0, factor=2)
  assert split.images.shape[1:3] == (SIZE // 2, SIZE // 2) and split.images.max() == 0
  assert _fallback_lines(capsys) == []


def test_factor_without_the_photos_in_either_folder_is_a_one_line_error(copy):
  root, scene_dir = copy
  os.makedirs(os.path.join(scene_dir, 'images_2'))
  for v in range(NUM_VIEWS - 1):
    shutil.copy(os.path.join(scene_dir, 'images', f'view_{v:02d}.png'), os.path.join(scene_dir, 'images_2'))
  os.remove(os.path.join(scene_dir, 'images', 'view_05.png'))
  with pytest.raises(DatasetError, match=r"data.factor=2: '.*images_2' lacks 1 of the 6 .*view_05.png.*and the "
                                         r"full-size '.*images' lacks 1 of them.*put the photos .* or complete "
                                         r".*images_2'.*or set data.factor=1") as error:
    colmap.load_split(root, 'scene', 'train', factor=2)
  assert '\n' not in str(error.value)
  shutil.rmtree(os.path.join(scene_dir, 'images'))
  shutil.rmtree(os.path.join(scene_dir, 'images_2'))
  with pytest.raises(DatasetError, match=r"Neither '.*scene/images_4' nor '.*scene/images' exists: put the "
                                         r"photos .*or set data.factor=1") as error:
    colmap.load_split(root, 'scene', 'train', factor=4)
  assert '\n' not in str(error.value)


def _smooth_pattern(x, y):
  """A smooth colour field on the normalised image plane: float [...] -> float [..., 3] in [0, 1]."""
  return np.stack([0.5 + 0.4 * np.sin(3 * x + 1), 0.5 + 0.4 * np.cos(2.5 * y), 0.5 + 0.3 * np.sin(2 * x + 3 * y)], -1)


def _opencv_distort(x, y, k1, k2, p1, p2):
  r2 = x * x + y * y
  radial = 1 + k1 * r2 + k2 * r2 * r2
  return x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)


@pytest.mark.parametrize('model, params, coeffs', [
    ('SIMPLE_RADIAL', [24.0, 16.5, 15.5, -0.12], (-0.12, 0, 0, 0)),
    ('RADIAL', [24.0, 16.5, 15.5, -0.1, 0.02], (-0.1, 0.02, 0, 0)),
    ('OPENCV', [24.0, 26.0, 16.5, 15.5, -0.1, 0.02, 0.004, -0.006], (-0.1, 0.02, 0.004, -0.006)),
])
def test_distorted_images_are_undistorted_to_the_pinhole_image(tmp_path, model, params, coeffs):
  fx, fy, cx, cy = (params[0], params[0], params[1], params[2]) if len(params) < 8 else params[:4]
  rows, cols = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing='ij')
  x, y = (cols - cx) / fx, (rows - cy) / fy
  pinhole = _smooth_pattern(x, y)  # what a pinhole camera with these fx, fy, cx, cy sees
  # The distorted photo: its pixel at distorted coordinates d shows the pattern at the undistorted u
  # with distort(u) = d; u by fixed-point iteration (COLMAP undistorts keypoints iteratively too).
  ux, uy = x.copy(), y.copy()
  for _ in range(100):
    dx, dy = _opencv_distort(ux, uy, *coeffs)
    ux, uy = ux - (dx - x), uy - (dy - y)
  np.testing.assert_allclose(_opencv_distort(ux, uy, *coeffs), (x, y), atol=1e-9)
  distorted = _smooth_pattern(ux, uy)
  image = np.round(distorted * 255).astype(np.uint8)  # rounding: at most 0.002
  write_workspace(str(tmp_path / 'scene'), camera_models={1: (model, params)}, images={1: image})
  split = colmap.load_split(str(tmp_path), 'scene', 'train', llffhold=0, views=[1])
  np.testing.assert_allclose(split.intrinsics[0], [fx, fy, cx, cy], rtol=1e-6)
  interior = (slice(2, -2), slice(2, -2))  # the edges sample outside the photo (edge values there)
  error = np.abs(split.images[0][interior] - pinhole[interior]).max()
  assert error < 0.01  # bilinear interpolation of the smooth pattern (~1e-3) and 8-bit rounding
  assert np.abs(distorted - pinhole)[interior].max() > 0.03  # not undistorting would fail it


@pytest.mark.parametrize('model, params', [
    ('FULL_OPENCV', [24.0, 24.0, 16.0, 16.0, -0.1, 0.01, 0, 0, 0.001, 0, 0, 0]),
    ('OPENCV_FISHEYE', [24.0, 24.0, 16.0, 16.0, 0.1, 0, 0, 0]),
])
def test_unsupported_camera_models_are_named(tmp_path, model, params):
  write_workspace(str(tmp_path / 'scene'), camera_models={2: (model, params)})
  with pytest.raises(DatasetError, match=rf'images.bin.*view_02.png.*camera 12 uses the {model}.*'
                                         r'image_undistorter'):
    colmap.load_split(str(tmp_path), 'scene', 'train')


def test_missing_folders_and_models_are_named(copy):
  root, scene_dir = copy
  with pytest.raises(DatasetError, match='Scene folder.*nowhere.*does not exist'):
    colmap.load_split(root, 'nowhere', 'train')
  for name in os.listdir(os.path.join(scene_dir, 'images')):
    os.remove(os.path.join(scene_dir, 'images', name))
  with pytest.raises(DatasetError, match=r"images folder '.*scene/images' holds no images"):
    colmap.load_split(root, 'scene', 'train')
  shutil.rmtree(os.path.join(scene_dir, 'sparse'))
  with pytest.raises(DatasetError, match=r"No COLMAP sparse model in '.*scene/sparse/0' or .*mapper"):
    colmap.load_split(root, 'scene', 'train')
  os.rmdir(os.path.join(scene_dir, 'images'))
  with pytest.raises(DatasetError, match=r"images folder '.*scene/images' does not exist"):
    colmap.load_split(root, 'scene', 'train')


def test_missing_and_unregistered_images_are_named(copy):
  root, scene_dir = copy
  images = os.path.join(scene_dir, 'images')
  shutil.copy(os.path.join(images, 'view_00.png'), os.path.join(images, 'stray.png'))
  with pytest.raises(DatasetError, match=r"1 image\(s\) in .*images' were not registered.*images.bin.*"
                                         r"stray.png.*remove them.*re-run mapping"):
    colmap.load_split(root, 'scene', 'train')
  os.remove(os.path.join(images, 'stray.png'))
  os.remove(os.path.join(images, 'view_04.png'))
  with pytest.raises(DatasetError, match=r"1 image\(s\) named in .*sparse/0/images.bin' are missing.*"
                                         r"view_04.png"):
    colmap.load_split(root, 'scene', 'train')


def test_images_of_another_size_are_named(copy):
  root, scene_dir = copy
  path = os.path.join(scene_dir, 'images', 'view_02.png')
  iio.imwrite(path, np.zeros((SIZE, SIZE // 2, 3), np.uint8))  # half as wide: the camera cannot follow
  with pytest.raises(DatasetError, match=r"view_02.png' is 16x32 but its camera 1 .* scale differently"):
    colmap.load_split(root, 'scene', 'train', llffhold=0)
  iio.imwrite(path, np.zeros((SIZE // 2, SIZE // 2, 3), np.uint8))  # evenly smaller: another size
  with pytest.raises(DatasetError, match=r"view_02.png' is 16x16 after loading but .*view_00.png' is 32x32"):
    colmap.load_split(root, 'scene', 'train', llffhold=0)


@pytest.mark.parametrize('name', ['cameras.bin', 'images.bin', 'points3D.bin'])
def test_truncated_binary_files_are_named(copy, name):
  root, scene_dir = copy
  path = os.path.join(scene_dir, 'sparse', '0', name)
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) - 5])
  with pytest.raises(DatasetError, match=rf"{name}' .*(truncated|more than its).*model_converter"):
    colmap.load_split(root, 'scene', 'train')


def test_garbled_text_model_is_named_with_its_line(workspaces, tmp_path):
  shutil.copytree(os.path.join(workspaces[0], 'txt'), tmp_path / 'scene')
  path = tmp_path / 'scene' / 'sparse' / '0' / 'cameras.txt'
  path.write_text(path.read_text().replace('SIMPLE_PINHOLE 32 32', 'SIMPLE_PINHOLE 32'))
  with pytest.raises(DatasetError, match=r"cameras.txt' line 5 cannot be parsed"):
    colmap.load_split(str(tmp_path), 'scene', 'train')


def test_a_photo_with_no_sparse_point_in_front_of_it_is_a_one_line_error(copy, workspaces):
  """A pose turned away from the scene (a bad registration): its near/far cannot be set."""
  root, scene_dir = copy
  sparse = os.path.join(scene_dir, 'sparse', '0')
  model = colmap_model.read_model(sparse)
  turned = workspaces[1]['poses'][2] @ np.diag([-1.0, 1.0, -1.0, 1.0])  # 180 degrees about its up axis
  qvec, tvec = colmap_extrinsics(turned)
  image = model.images[7 + 3 * 2]
  image.qvec, image.tvec = qvec, tvec
  colmap_model.write_model(model, sparse, '.bin')
  with pytest.raises(DatasetError, match=r"no sparse point lies in front of image 13 \(view_02.png\).*"
                                         r"Re-run mapping") as err:
    colmap.load_split(root, 'scene', 'train')
  assert '\n' not in str(err.value)
