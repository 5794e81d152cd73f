"""The 'transforms' format (a phone capture's transforms.json) and data.format='auto': the built-in
spheres written as instant-NGP / nerfstudio would write them (in a rotated, scaled, shifted world, with
OpenCV or fisheye distortion), read back and compared with the truth; splits, file paths, the bad
inputs; and the two real captures in ../shared where they are present."""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest

from configs import default
from nerf_jax import datasets
from nerf_jax.cameras import pinhole as camera_lib
from nerf_jax.datasets import colmap, generated, transforms
from nerf_jax.errors import DatasetError
from tests.conftest import override

SIZE = 24
FOCAL = 0.5 * SIZE / np.tan(0.5 * generated.CAMERA_ANGLE_X)
NUM_VIEWS = 9
CAPTURES = os.environ.get('NERF_JAX_CAPTURES', os.path.join(os.path.dirname(__file__), '..', '..', 'shared',
                                                            'data', 'captures'))


def _rotation(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


# The exporter's arbitrary world: x -> S R x + T (colmap2nerf's own re-centring and scaling, say).
GAUGE_R, GAUGE_S, GAUGE_T = _rotation([0.2, 1.0, -0.4], 1.3), 0.61, np.array([0.4, -1.1, 2.0])


def true_poses():
  return np.stack([camera_lib.look_at_pose(p) for p in generated.camera_positions(NUM_VIEWS, 3)])


def to_file_world(pose):
  out = pose.copy()
  out[:3, :3] = GAUGE_R @ pose[:3, :3]
  out[:3, 3] = GAUGE_S * GAUGE_R @ pose[:3, 3] + GAUGE_T
  return out


def write_capture(path, *, intrinsics='focal', per_frame=False, ext='.png', keep_ext=True, splits=None,
                  extra=None, images=None):
  """The spheres as a transforms.json capture (RGB photos, no alpha) in `path`; returns the true poses.
  intrinsics: 'focal' (fl_x, fl_y) or 'angle' (camera_angle_x / _y); per_frame: the intrinsics in every
  frame instead of the top level; splits: {split: frame indices} as transforms_<split>.json files;
  extra: more top-level keys; images: {frame: uint8 image} written in place of the render."""
  os.makedirs(os.path.join(path, 'images'), exist_ok=True)
  poses = true_poses()
  camera = ({'fl_x': FOCAL, 'fl_y': FOCAL} if intrinsics == 'focal' else
            {'camera_angle_x': generated.CAMERA_ANGLE_X, 'camera_angle_y': generated.CAMERA_ANGLE_X})
  camera.update({'cx': SIZE / 2, 'cy': SIZE / 2, 'w': SIZE, 'h': SIZE, **(extra or {})})
  frames = []
  for i, pose in enumerate(poses):
    image = (images or {}).get(i)
    if image is None:
      rgba = generated.render_view(pose, SIZE, SIZE, FOCAL).astype(np.float32) / 255
      image = np.round((rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]) * 255).astype(np.uint8)
    iio.imwrite(os.path.join(path, 'images', f'frame_{i:03d}{ext}'), image)
    frame = {'file_path': f'./images/frame_{i:03d}' + (ext if keep_ext else ''),
             'transform_matrix': to_file_world(pose).tolist()}
    frames.append({**frame, **(camera if per_frame else {})})
  top = {} if per_frame else camera
  for name, indices in (splits or {None: range(NUM_VIEWS)}).items():
    file = 'transforms.json' if name is None else f'transforms_{name}.json'
    with open(os.path.join(path, file), 'w') as f:
      json.dump({**top, 'frames': [frames[i] for i in indices]}, f)
  return poses


def test_loader_recovers_the_poses_rays_and_images_in_the_normalised_world(tmp_path):
  truth = write_capture(str(tmp_path / 'cap'))
  split = transforms.load_split(str(tmp_path), 'cap', 'train', llffhold=0)
  assert split.layout == 'inward' and split.alphas is None and split.images.shape == (NUM_VIEWS, SIZE, SIZE, 3)
  np.testing.assert_allclose(split.intrinsics, [[FOCAL, FOCAL, SIZE / 2, SIZE / 2]] * NUM_VIEWS, rtol=1e-6)
  # The true cameras are 4 from the origin they look at; the loader's world is the truth up to a
  # rotation: the file's gauge undone, cameras at their mean distance 4 from the centre they look at.
  centres = split.poses[:, :3, 3]
  np.testing.assert_allclose(np.linalg.norm(centres, axis=-1), 4.0, atol=1e-4)
  rotation = split.poses[0, :3, :3] @ truth[0, :3, :3].T  # world rotation truth -> loader
  np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
  np.testing.assert_allclose(centres, truth[:, :3, 3] @ rotation.T, atol=1e-4)
  # Rays through some pixels against the independent renderer's, carried by that rotation: the poses
  # are camera-to-world in OpenGL axes (camera looking down -Z), not world-to-camera or OpenCV's.
  rows, cols = np.array([0, 5, 12, 23]), np.array([23, 0, 12, 7])
  for v in range(NUM_VIEWS):
    np.testing.assert_allclose(split.poses[v, :3, :3], rotation @ truth[v, :3, :3], atol=1e-5)
    rays = camera_lib.rays_from_pixels(split.poses[v], split.intrinsics[v], rows, cols)
    _, directions = generated.pixel_rays(truth[v], SIZE, SIZE, FOCAL)
    expected = directions[rows, cols] @ rotation.T
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    got = np.asarray(rays.directions) / np.linalg.norm(rays.directions, axis=-1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
  # Without points, the bounds follow each camera's distance to the centre (module docstring).
  np.testing.assert_allclose(split.near, transforms.NEAR_FRACTION * 4.0, rtol=1e-4)
  np.testing.assert_allclose(split.far, transforms.FAR_FRACTION * 4.0, rtol=1e-4)
  rgba = generated.render_view(truth[2], SIZE, SIZE, FOCAL).astype(np.float32) / 255
  np.testing.assert_allclose(split.images[2], rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:], atol=3e-3)


@pytest.mark.parametrize('intrinsics, per_frame', [('angle', False), ('focal', True), ('angle', True)])
def test_intrinsics_from_either_form_top_level_or_per_frame(tmp_path, intrinsics, per_frame):
  write_capture(str(tmp_path / 'cap'), intrinsics=intrinsics, per_frame=per_frame)
  split = transforms.load_split(str(tmp_path), 'cap', 'test', llffhold=8)
  np.testing.assert_allclose(split.intrinsics, [[FOCAL, FOCAL, SIZE / 2, SIZE / 2]] * 2, rtol=1e-6)


def test_a_frame_overrides_the_top_level_intrinsics(tmp_path):
  write_capture(str(tmp_path / 'cap'))
  path = tmp_path / 'cap' / 'transforms.json'
  meta = json.loads(path.read_text())
  meta['frames'][8].update({'fl_x': 30.0, 'fl_y': 31.0, 'cx': 11.0})
  path.write_text(json.dumps(meta))
  split = transforms.load_split(str(tmp_path), 'cap', 'test', llffhold=8)
  np.testing.assert_allclose(split.intrinsics[1], [30.0, 31.0, 11.0, SIZE / 2])
  np.testing.assert_allclose(split.intrinsics[0], [FOCAL, FOCAL, SIZE / 2, SIZE / 2], rtol=1e-6)


def _pattern(x, y):
  return np.stack([0.5 + 0.4 * np.sin(3 * x + 1), 0.5 + 0.4 * np.cos(2.5 * y), 0.5 + 0.3 * np.sin(2 * x + 3 * y)], -1)


def _closed_form(x, y, keys, fisheye):
  """The exporter's distortion written out on its own (OpenCV's formulas): undistorted -> distorted."""
  g = lambda k: keys.get(k, 0.0)
  if fisheye:
    r = np.hypot(x, y)
    theta = np.arctan(r)
    d = theta * (1 + g('k1') * theta ** 2 + g('k2') * theta ** 4 + g('k3') * theta ** 6 + g('k4') * theta ** 8)
    ratio = np.where(r > 0, d / np.maximum(r, 1e-300), 1.0)
    return x * ratio, y * ratio
  r2 = x * x + y * y
  radial = 1 + g('k1') * r2 + g('k2') * r2 ** 2 + g('k3') * r2 ** 3 + g('k4') * r2 ** 4
  return (x * radial + 2 * g('p1') * x * y + g('p2') * (r2 + 2 * x * x),
          y * radial + 2 * g('p2') * x * y + g('p1') * (r2 + 2 * y * y))


@pytest.mark.parametrize('keys', [
    {'k1': -0.1, 'k2': 0.02, 'p1': 0.004, 'p2': -0.006},
    {'k1': -0.08, 'k2': 0.01, 'k3': -0.004, 'k4': 0.002, 'p1': 0.003, 'p2': 0.002},
    {'camera_model': 'OPENCV_FISHEYE', 'k1': 0.05, 'k2': -0.01, 'k3': 0.002, 'k4': -0.001},
])
def test_distortion_is_undistorted_against_its_closed_form(tmp_path, keys):
  fisheye = keys.get('camera_model') == 'OPENCV_FISHEYE'
  fx, fy, cx, cy = 14.0, 15.0, 12.5, 11.5
  rows, cols = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing='ij')
  x, y = (cols - cx) / fx, (rows - cy) / fy
  pinhole = _pattern(x, y)
  ux, uy = x.copy(), y.copy()  # the undistorted point that distorts onto each pixel: fixed-point iteration
  for _ in range(200):
    dx, dy = _closed_form(ux, uy, keys, fisheye)
    ux, uy = ux - (dx - x), uy - (dy - y)
  np.testing.assert_allclose(_closed_form(ux, uy, keys, fisheye), (x, y), atol=1e-9)
  distorted = _pattern(ux, uy)
  image = np.round(distorted * 255).astype(np.uint8)
  write_capture(str(tmp_path / 'cap'), images={0: image},
                extra={'fl_x': fx, 'fl_y': fy, 'cx': cx, 'cy': cy, **keys})
  split = transforms.load_split(str(tmp_path), 'cap', 'test', llffhold=8, views=[0])
  interior = (slice(2, -2), slice(2, -2))
  assert np.abs(split.images[0][interior] - pinhole[interior]).max() < 0.01
  assert np.abs(distorted - pinhole)[interior].max() > 0.03  # not undistorting would fail it


def test_splits_files_or_every_eighth_frame_sorted_by_path(tmp_path):
  write_capture(str(tmp_path / 'one'))
  test = transforms.load_split(str(tmp_path), 'one', 'test', llffhold=8)
  assert test.names == ('images/frame_000.png', 'images/frame_008.png')
  assert len(transforms.load_split(str(tmp_path), 'one', 'train', llffhold=8).names) == 7
  write_capture(str(tmp_path / 'files'), splits={'train': [0, 1, 2, 3], 'val': [4], 'test': [5, 6, 7, 8]})
  split = transforms.load_split(str(tmp_path), 'files', 'test')
  assert split.names == tuple(f'images/frame_{i:03d}.png' for i in (5, 6, 7, 8))
  assert transforms.load_split(str(tmp_path), 'files', 'val').names == ('images/frame_004.png',)
  # One world for every split: the same frame has the same pose whichever file or split it comes from.
  whole = transforms.load_split(str(tmp_path), 'one', 'train', llffhold=0)
  np.testing.assert_allclose(split.poses, whole.poses[5:], atol=1e-5)
  with pytest.raises(DatasetError, match=r"has no split 'holdout'"):
    transforms.load_split(str(tmp_path), 'files', 'holdout')


def test_file_paths_without_extensions_and_nerfstudio_downscaled_folders(tmp_path):
  write_capture(str(tmp_path / 'cap'), ext='.jpg', keep_ext=False)
  split = transforms.load_split(str(tmp_path), 'cap', 'test', llffhold=8)
  assert split.names == ('images/frame_000.jpg', 'images/frame_008.jpg')
  # data.factor=2 reads images_2/ where a copy exists (intrinsics scaled by its size), else resizes.
  os.makedirs(tmp_path / 'cap' / 'images_2')
  iio.imwrite(tmp_path / 'cap' / 'images_2' / 'frame_000.jpg', np.full((SIZE // 2, SIZE // 2, 3), 7, np.uint8))
  halved = transforms.load_split(str(tmp_path), 'cap', 'test', llffhold=8, factor=2)
  assert halved.images.shape == (2, SIZE // 2, SIZE // 2, 3)
  np.testing.assert_allclose(halved.images[0], 7 / 255, atol=2e-3)  # the copy, not the photo resized
  np.testing.assert_allclose(halved.intrinsics, [[FOCAL / 2, FOCAL / 2, SIZE / 4, SIZE / 4]] * 2, rtol=1e-5)


def test_bad_captures_are_one_line_errors_naming_the_frame(tmp_path):
  write_capture(str(tmp_path / 'cap'))
  os.remove(tmp_path / 'cap' / 'images' / 'frame_004.png')
  with pytest.raises(DatasetError, match=r"transforms.json': frame 4 \(./images/frame_004.png\): its photo "
                                         r".*frame_004.png' is missing"):
    transforms.load_split(str(tmp_path), 'cap', 'train')
  write_capture(str(tmp_path / 'model'), extra={'camera_model': 'EQUIRECTANGULAR'})
  with pytest.raises(DatasetError, match=r"frame 0 .*\"camera_model\" is 'EQUIRECTANGULAR'.*PINHOLE"):
    transforms.load_split(str(tmp_path), 'model', 'test')
  write_capture(str(tmp_path / 'nofocal'), extra={})
  path = tmp_path / 'nofocal' / 'transforms.json'
  meta = json.loads(path.read_text())
  del meta['fl_x'], meta['fl_y']
  path.write_text(json.dumps(meta))
  with pytest.raises(DatasetError, match=r'frame 0 .*gives no focal length: add "fl_x"'):
    transforms.load_split(str(tmp_path), 'nofocal', 'test')
  os.makedirs(tmp_path / 'empty')
  with pytest.raises(DatasetError, match=r'No transforms.json .* in .*empty'):
    transforms.load_split(str(tmp_path), 'empty', 'test')


def test_auto_format_detects_each_layout_and_says_which_in_one_line(tmp_path, capsys):
  write_capture(str(tmp_path / 'cap'))
  generated.write_scene(str(tmp_path / 'blend'), size=8, splits={'train': (2, 0)})
  os.makedirs(tmp_path / 'llff')
  np.save(tmp_path / 'llff' / 'poses_bounds.npy', np.zeros((2, 17)))
  os.makedirs(tmp_path / 'col' / 'sparse' / '0')
  for name in ('cameras', 'images', 'points3D'):
    (tmp_path / 'col' / 'sparse' / '0' / f'{name}.bin').write_bytes(b'')
  write_capture(str(tmp_path / 'polycam'), per_frame=True)  # intrinsics in every frame, none at the top
  found = {s: datasets.detect_format(str(tmp_path / s))[0] for s in ('cap', 'polycam', 'blend', 'llff', 'col')}
  assert found == {'cap': 'transforms', 'polycam': 'transforms', 'blend': 'blender', 'llff': 'llff',
                   'col': 'colmap'}
  config = override(default.get_config(), **{'data.format': 'auto', 'data.root': str(tmp_path),
                                              'data.scene': 'cap', 'data.white_bkgd': False, 'data.llffhold': 8})
  capsys.readouterr()
  split = datasets.load_split(config.data, 'test')
  datasets.load_split(config.data, 'train')
  lines = [l for l in capsys.readouterr().out.splitlines() if 'data.format' in l]
  assert lines == [f"data.format='auto': {tmp_path / 'cap'} holds transforms.json with intrinsics: reading it "
                   f"as data.format='transforms'."]
  assert split.names == ('images/frame_000.png', 'images/frame_008.png')
  os.makedirs(tmp_path / 'nothing')
  with pytest.raises(DatasetError, match=r"data.format='auto' found no scene in .*nothing"):
    datasets.detect_format(str(tmp_path / 'nothing'))


@pytest.mark.skipif(not os.path.isdir(os.path.join(CAPTURES, 'fruit')),
                    reason=f'the real captures are not at {CAPTURES} (set NERF_JAX_CAPTURES)')
def test_the_shared_phone_captures_are_detected_and_read():
  """fruit: instant-NGP's transforms.json with OPENCV distortion; bird: a COLMAP model. Both 360-degree
  inward captures, normalised alike (cameras 4 from the centre)."""
  assert datasets.detect_format(os.path.join(CAPTURES, 'fruit'))[0] == 'transforms'
  assert datasets.detect_format(os.path.join(CAPTURES, 'bird'))[0] == 'colmap'
  data = transforms.read_scene(os.path.join(CAPTURES, 'fruit'))
  assert data['layout'] == 'inward' and len(data['frames']) == 81 and len(data['splits']['test']()) == 11
  centres = data['poses'][:, :3, 3]
  np.testing.assert_allclose(np.linalg.norm(centres, axis=-1).mean(), 4.0, rtol=0.05)  # about the centre
  view = transforms.load_split(CAPTURES, 'fruit', 'test', views=[0], input_ratio=0.25)
  assert view.images.shape == (1, 202, 151, 3) and view.names == ('newfruit_small/IMG_3626.jpg',)
  assert 0.4 < view.images.mean() < 0.8  # a photo, decoded
  assert view.intrinsics[0, 0] == pytest.approx(627.789 / 4, rel=0.01)
  bird = colmap.read_scene(os.path.join(CAPTURES, 'bird'))
  assert bird.layout == 'inward' and len(bird.names) == 184


def test_a_named_point_cloud_sets_each_view_s_near_and_far(tmp_path):
  import trimesh
  truth = write_capture(str(tmp_path / 'cap'), extra={'ply_file_path': 'sparse_pc.ply'})
  points = generated.visible_sphere_points(per_sphere=200)
  trimesh.PointCloud(GAUGE_S * points @ GAUGE_R.T + GAUGE_T).export(str(tmp_path / 'cap' / 'sparse_pc.ply'))
  split = transforms.load_split(str(tmp_path), 'cap', 'train', llffhold=0)
  for v, pose in enumerate(truth):  # the true cameras are 4 from the origin: the loader's scale is 1 there
    depths = (points - pose[:3, 3]) @ -pose[:3, 2]
    low, high = np.percentile(depths, (1, 99))  # the COLMAP loader's bounds, its margins around them
    np.testing.assert_allclose([split.near[v], split.far[v]], [0.9 * low, 1.1 * high], rtol=1e-4)
  (tmp_path / 'cap' / 'sparse_pc.ply').write_text('not a ply')
  with pytest.raises(DatasetError, match=r'"ply_file_path" .sparse_pc.ply. could not be read'):
    transforms.load_split(str(tmp_path), 'cap', 'train', llffhold=0)
