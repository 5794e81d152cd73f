import json
import os
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from configs import default
from nerf_jax import datasets
from nerf_jax.datasets import blender, generated
from tests.conftest import override


def test_white_compositing_of_rgba():
  rgba = np.array([[0.2, 0.4, 0.6, 1.0],   # opaque: its own colour
                   [0.2, 0.4, 0.6, 0.0],   # transparent: white, whatever rgb says
                   [0.0, 0.0, 0.0, 0.25]], np.float32)  # a quarter-covered black pixel
  np.testing.assert_allclose(blender.composite_on_white(rgba),
                             [[0.2, 0.4, 0.6], [1, 1, 1], [0.75, 0.75, 0.75]], atol=1e-7)


def test_area_resize_averages_blocks_and_handles_uneven_ratios():
  image = np.random.default_rng(0).uniform(size=(6, 8, 3)).astype(np.float32)
  half = blender.area_resize(image, 3, 4)
  np.testing.assert_allclose(half, image.reshape(3, 2, 4, 2, 3).mean(axis=(1, 3)), atol=1e-6)
  third = blender.area_resize(image, 4, 5)  # non-integer factors keep the mean
  np.testing.assert_allclose(third.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1e-5)


def test_generated_scene_loads_as_blender(spheres_root):
  split = blender.load_split(spheres_root, 'spheres', 'train')
  assert split.images.shape == (8, 64, 64, 3) and split.alphas.shape == (8, 64, 64)
  assert split.images.dtype == np.float32 and 0 <= split.images.min() and split.images.max() <= 1
  focal = 32 / np.tan(0.5 * generated.CAMERA_ANGLE_X)
  np.testing.assert_allclose(split.intrinsics, np.tile([focal, focal, 32, 32], (8, 1)), rtol=1e-6)
  # Background pixels (alpha 0) are white after compositing; the object covers part of each view.
  background = split.alphas == 0
  assert background.any() and (~background).any()
  np.testing.assert_allclose(split.images[background], 1.0)
  # Poses are camera-to-world: the translation is the camera centre (radius 4) and the camera's -Z
  # axis (minus the third column) points at the scene's centre.
  for pose in split.poses:
    centre, forward = pose[:3, 3], -pose[:3, 2]
    assert abs(np.linalg.norm(centre) - generated.CAMERA_RADIUS) < 1e-4
    np.testing.assert_allclose(forward, -centre / np.linalg.norm(centre), atol=1e-5)


def test_input_ratio_halves_the_image_and_focal(spheres_root):
  full = blender.load_split(spheres_root, 'spheres', 'val', views=[0])
  half = blender.load_split(spheres_root, 'spheres', 'val', views=[0], input_ratio=0.5)
  assert half.images.shape == (1, 32, 32, 3)
  np.testing.assert_allclose(half.intrinsics, full.intrinsics / 2, rtol=1e-6)  # fx, fy, cx, cy
  np.testing.assert_allclose(half.images[0], full.images[0].reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)),
                             atol=1e-6)


def test_built_in_scene_is_rendered_on_first_use(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setitem(generated.GENERATED_SCENES, 'spheres', lambda path: (
      calls.append(path),
      generated.write_scene(path, size=16, splits={'train': (2, 0), 'val': (1, 1), 'test': (1, 2)})))
  config = override(default.get_config(), **{'data.root': str(tmp_path), 'data.scene': 'spheres'})
  first = datasets.load_split(config.data, 'train')
  second = datasets.load_split(config.data, 'train')
  assert len(calls) == 1 and first.images.shape == (2, 16, 16, 3)
  np.testing.assert_array_equal(first.images, second.images)


@pytest.fixture
def scene_copy(spheres_root, tmp_path):
  shutil.copytree(os.path.join(spheres_root, 'spheres'), tmp_path / 'copy')
  return str(tmp_path)


def test_missing_scene_says_how_to_get_it(tmp_path):
  with pytest.raises(datasets.DatasetError, match='does not exist.*nerf_synthetic.*data.root'):
    blender.load_split(str(tmp_path), 'lego', 'train')


def test_missing_split_lists_what_exists(scene_copy):
  with pytest.raises(datasets.DatasetError, match="transforms_nope.json.*missing.*transforms_train.json"):
    blender.load_split(scene_copy, 'copy', 'nope')


@pytest.mark.parametrize('content, message', [
    ('{"frames": [', 'not valid JSON'),
    ('{"frames": []}', 'camera_angle_x'),
    ('{"camera_angle_x": 0.7, "frames": []}', 'empty "frames" list'),
    ('{"camera_angle_x": 0.7, "frames": [{"file_path": "./train/r_0", "transform_matrix": [[1, 0]]}]}',
     'not a 4x4 matrix'),
])
def test_malformed_transforms_are_named(scene_copy, content, message):
  with open(os.path.join(scene_copy, 'copy', 'transforms_train.json'), 'w') as f:
    f.write(content)
  with pytest.raises(datasets.DatasetError, match=message):
    blender.load_split(scene_copy, 'copy', 'train')


def test_rgb_image_without_alpha_is_refused(scene_copy):
  path = os.path.join(scene_copy, 'copy', 'train', 'r_0.png')
  iio.imwrite(path, iio.imread(path)[..., :3])
  with pytest.raises(datasets.DatasetError, match='3 channel.*RGBA'):
    blender.load_split(scene_copy, 'copy', 'train', views=[0])


def test_missing_image_and_bad_view_are_named(scene_copy):
  with pytest.raises(datasets.DatasetError, match='View 99 does not exist.*8 views'):
    blender.load_split(scene_copy, 'copy', 'train', views=[99])
  os.remove(os.path.join(scene_copy, 'copy', 'train', 'r_1.png'))
  with pytest.raises(datasets.DatasetError, match='r_1.png.*missing'):
    blender.load_split(scene_copy, 'copy', 'train')


def test_bad_input_ratio(spheres_root):
  with pytest.raises(datasets.DatasetError, match='input_ratio'):
    blender.load_split(spheres_root, 'spheres', 'train', input_ratio=2.0)


def test_lego_view0(lego_root):
  split = blender.load_split(lego_root, 'lego', 'train', views=[0])
  assert split.images.shape == (1, 400, 400, 3)
  np.testing.assert_allclose(split.intrinsics[:, 0], 0.5 * 400 / np.tan(0.5 * 0.6911112070083618), rtol=1e-5)
  np.testing.assert_allclose(split.images[0, 0, 0], 1.0)  # white background at the corner
  assert 0.0 < split.alphas.mean() < 0.6  # the model covers part of the frame
  with open(os.path.join(lego_root, 'lego', 'transforms_train.json')) as f:
    np.testing.assert_allclose(split.poses[0], json.load(f)['frames'][0]['transform_matrix'], atol=1e-6)
