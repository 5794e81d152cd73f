"""nerf_jax.sfm: photos of the textured generated scene, whose cameras are known, back to those cameras."""

import os

import imageio.v3 as iio
import numpy as np
import pytest

from nerf_jax import sfm
from nerf_jax.cameras.pinhole import look_at_pose
from nerf_jax.datasets import generated
from nerf_jax.errors import DatasetError

pycolmap = pytest.importorskip('pycolmap', reason='the optional extra: pip install -r requirements-sfm.txt')

NUM_VIEWS, SIZE = 24, 256
# Measured (pycolmap 4.2.1, 24 views of 256 px): centres within 0.07 % of the camera radius RMS, rotations
# within 0.08 degrees, the focal length within 0.1 %. The bounds leave room for other versions of COLMAP.
CENTRE_RMS_TOLERANCE = 0.01  # of generated.CAMERA_RADIUS
ROTATION_TOLERANCE_DEG = 0.5
FOCAL_TOLERANCE = 0.01  # relative
DECOYS = ('zz_decoy_a.png', 'zz_decoy_b.png')  # flat noise pictures of nothing in the scene


def umeyama(source, target):
  """Similarity (scale, rotation, translation) with target ~ scale * rotation @ source + translation, by
  least squares (Umeyama 1991). source, target: float64 [n, 3]."""
  mu_source, mu_target = source.mean(0), target.mean(0)
  a, b = source - mu_source, target - mu_target
  u, s, vt = np.linalg.svd(b.T @ a / len(a))
  d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])  # a rotation, not a reflection
  rotation = u @ d @ vt
  scale = np.trace(np.diag(s) @ d) / np.mean(np.sum(a * a, -1))
  return scale, rotation, mu_target - scale * rotation @ mu_source


def test_umeyama_recovers_a_similarity():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(10, 3))
  rotation = look_at_pose([1.0, 2.0, 0.5])[:3, :3]
  scale, rot, shift = umeyama(points, 2.5 * points @ rotation.T + [1.0, -2.0, 3.0])
  np.testing.assert_allclose([scale, *shift], [2.5, 1.0, -2.0, 3.0], atol=1e-9)
  np.testing.assert_allclose(rot, rotation, atol=1e-9)


def colmap_camera_to_world(image):
  """COLMAP's world-to-camera (OpenCV axes) -> camera-to-world with OpenGL axes, as generated poses.
  float64 [4, 4]."""
  world_to_camera = np.vstack([image.cam_from_world().matrix(), [0.0, 0.0, 0.0, 1.0]])
  pose = np.linalg.inv(world_to_camera)
  pose[:3, 1:3] *= -1.0  # y down, z forward -> y up, z backward
  return pose


@pytest.fixture(scope='module')
def reconstructed(tmp_path_factory):
  """The textured scene's views plus two decoys, through sfm.run. (true poses, focal, scene dir, report)"""
  root = tmp_path_factory.mktemp('sfm')
  photos = str(root / 'photos')
  poses, focal = generated.write_textured_views(photos, NUM_VIEWS, SIZE)
  grid = np.stack(np.meshgrid(np.linspace(0, 3, SIZE), np.linspace(0, 3, SIZE), [0.0]), -1)[:, :, 0]
  for seed, name in enumerate(DECOYS):
    iio.imwrite(os.path.join(photos, name), (generated.noise_texture(grid, 100 + seed) * 255).astype(np.uint8))
  scene = str(root / 'scenes' / 'textured')
  report = sfm.run(photos, scene)
  return poses, focal, scene, report


def test_recovers_the_cameras_up_to_a_similarity(reconstructed):
  poses, focal, scene, report = reconstructed
  model = pycolmap.Reconstruction(os.path.join(scene, 'sparse', '0'))
  names = sorted(model.images[i].name for i in model.reg_image_ids())
  assert names == [f'view_{i:03d}.png' for i in range(NUM_VIEWS)], 'every view, and no decoy, registered'
  assert report['registered'] == NUM_VIEWS and sorted(report['unregistered']) == list(DECOYS)
  assert sorted(os.listdir(os.path.join(scene, 'images'))) == names
  assert sorted(os.listdir(os.path.join(scene, 'unregistered'))) == list(DECOYS)
  assert os.path.exists(os.path.join(scene, 'colmap', 'database.db'))

  by_name = {model.images[i].name: model.images[i] for i in model.reg_image_ids()}
  estimated = np.stack([colmap_camera_to_world(by_name[n]) for n in names])
  scale, rotation, shift = umeyama(estimated[:, :3, 3], poses[:, :3, 3])
  centres = scale * estimated[:, :3, 3] @ rotation.T + shift
  rms = np.sqrt(np.mean(np.sum((centres - poses[:, :3, 3]) ** 2, -1))) / generated.CAMERA_RADIUS
  assert rms < CENTRE_RMS_TOLERANCE, f'camera centres off by {100 * rms:.2f} % of the radius (RMS)'
  # The same similarity's rotation takes every camera's axes to the true ones: this checks the axes'
  # conventions (OpenCV -> OpenGL, world-to-camera -> camera-to-world), not only the centres.
  relative = np.einsum('ij,njk,nlk->nil', rotation, estimated[:, :3, :3], poses[:, :3, :3])
  angles = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))
  assert angles.max() < ROTATION_TOLERANCE_DEG, f'rotations off by up to {angles.max():.3f} degrees'

  (camera,) = model.cameras.values()  # one shared camera
  assert camera.model_name == 'PINHOLE' and (camera.width, camera.height) == (SIZE, SIZE)
  np.testing.assert_allclose(camera.params[:2], focal, rtol=FOCAL_TOLERANCE)


def test_the_colmap_loader_reads_the_output(reconstructed):
  from nerf_jax import datasets
  from configs import default
  poses, _, scene, _ = reconstructed
  config = default.get_config()
  config.data.format, config.data.root, config.data.scene = 'colmap', os.path.dirname(scene), 'textured'
  config.data.llffhold = 0  # every image in 'train'
  split = datasets.load_split(config.data, 'train')
  assert len(split.images) == NUM_VIEWS and split.images.shape[1:3] == (SIZE, SIZE)
  assert sorted(split.names) == [f'view_{i:03d}.png' for i in range(NUM_VIEWS)]
  order = [int(n[5:8]) for n in split.names]
  scale, rotation, shift = umeyama(split.poses[:, :3, 3].astype(np.float64), poses[order, :3, 3])
  centres = scale * split.poses[:, :3, 3] @ rotation.T + shift
  rms = np.sqrt(np.mean(np.sum((centres - poses[order, :3, 3]) ** 2, -1))) / generated.CAMERA_RADIUS
  assert rms < CENTRE_RMS_TOLERANCE, f'loaded camera centres off by {100 * rms:.2f} % of the radius (RMS)'
  relative = np.einsum('ij,njk,nlk->nil', rotation, split.poses[:, :3, :3], poses[order, :3, :3])
  np.testing.assert_allclose(relative, np.broadcast_to(np.eye(3), relative.shape), atol=0.02)


def test_trains_on_the_reconstruction(reconstructed, tmp_path):
  """Photos -> sfm -> the colmap format -> NeRF training with configs/colmap.py's settings (a small model
  and a few steps here): the loss on a fixed batch falls by half."""
  from configs import colmap
  from nerf_jax import train, video
  from tests.conftest import override, train_on_a_fixed_batch
  _, _, scene, _ = reconstructed
  config = override(colmap.get_config(), **{
      'data.root': os.path.dirname(scene), 'data.scene': 'textured', 'model.width': 64, 'model.num_coarse': 16,
      'model.num_fine': 16, 'train.steps': 60, 'train.lr': 5e-3, 'train.lr_decay_steps': 60,
      'train.eval_every': 0, 'train.checkpoint_every': 60, 'eval.train_views': (0, 1, 1)})
  task, params, before, after = train_on_a_fixed_batch(config, str(tmp_path))
  assert task.scene.layout == 'inward' and 0 < task.near < task.far
  assert after < 0.5 * before, (before, after)
  # Evaluation and --mode render work on it: an inward capture gets the orbit (the normalised world
  # has the cameras' up as +Z, the scene's centre at the origin).
  result = train.evaluate_checkpoint(config, str(tmp_path))
  assert result['num_views'] == 3 and result['psnr'] > 10  # views 0, 8, 16 of the 24
  paths = video.render_path(task, params, override(config, **{'render.frames': 3}).render,
                            str(tmp_path / 'render'), config.eval)
  assert 'orbit.mp4' in [os.path.basename(p) for p in paths]


def test_a_distortion_model_is_undistorted_to_a_pinhole(reconstructed, tmp_path):
  photos = os.path.join(os.path.dirname(os.path.dirname(reconstructed[2])), 'photos')
  scene = str(tmp_path / 'scene')
  report = sfm.run(photos, scene, camera_model='SIMPLE_RADIAL')
  assert report['registered'] == NUM_VIEWS and sorted(report['unregistered']) == list(DECOYS)
  (camera,) = pycolmap.Reconstruction(os.path.join(scene, 'sparse', '0')).cameras.values()
  assert camera.model_name == 'PINHOLE'
  assert sorted(os.listdir(os.path.join(scene, 'images'))) == [f'view_{i:03d}.png' for i in range(NUM_VIEWS)]
  assert iio.imread(os.path.join(scene, 'images', 'view_000.png')).shape[:2] == (camera.height, camera.width)
  assert len(os.listdir(os.path.join(scene, 'colmap', 'distorted_images'))) == NUM_VIEWS  # the originals


def test_refuses_to_replace_a_reconstruction(reconstructed):
  _, _, scene, _ = reconstructed
  photos = os.path.join(os.path.dirname(os.path.dirname(scene)), 'photos')
  with pytest.raises(DatasetError, match='already holds sparse/.*--overwrite'):
    sfm.run(photos, scene)
  with pytest.raises(DatasetError, match='inside'):
    sfm.run(os.path.join(scene, 'images'), scene, overwrite=True)


def test_bad_input_is_named(tmp_path):
  with pytest.raises(DatasetError, match=f'{tmp_path / "missing"} does not exist'):
    sfm.run(str(tmp_path / 'missing'), str(tmp_path / 'out'))
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'notes.txt').write_text('not a photo')
  with pytest.raises(DatasetError, match=f'{empty} holds no images.*at least 3'):
    sfm.run(str(empty), str(tmp_path / 'out'))
  for i in range(2):
    iio.imwrite(empty / f'{i}.png', np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(DatasetError, match=f'{empty} holds 2 images.*at least 3'):
    sfm.run(str(empty), str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists(), 'nothing written before the input is checked'


def test_no_model_is_an_error(tmp_path, capsys):
  photos = tmp_path / 'blank'
  photos.mkdir()
  for i in range(3):
    iio.imwrite(photos / f'{i}.png', np.full((64, 64, 3), 128, np.uint8))
  assert sfm.main([str(photos), '--out', str(tmp_path / 'scene')]) == 2
  assert 'error: the mapper found no model in 3 images' in capsys.readouterr().err


def test_without_pycolmap_the_error_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(__import__('sys').modules, 'pycolmap', None)  # `import pycolmap` raises ImportError
  with pytest.raises(DatasetError, match='pip install -r requirements-sfm.txt'):
    sfm.import_pycolmap()


def test_photos_are_turned_upright_and_resized(tmp_path):
  from PIL import Image
  photos, images = tmp_path / 'photos', tmp_path / 'images'
  photos.mkdir()
  images.mkdir()
  exif = Image.Exif()
  exif[0x0112] = 6  # EXIF Orientation: rotate 90 degrees clockwise to view
  Image.new('RGB', (300, 200), (200, 20, 20)).save(photos / 'turned.jpg', exif=exif.tobytes())
  Image.new('RGB', (60, 40)).save(photos / 'small.png')
  assert sfm.copy_photos(str(photos), str(images), 150) == ['small.png', 'turned.jpg']
  with Image.open(images / 'turned.jpg') as image:
    assert image.size == (100, 150) and image.getexif().get(0x0112, 1) == 1
  assert (images / 'small.png').read_bytes() == (photos / 'small.png').read_bytes()  # untouched: copied


def test_video_every_nth_frame(reconstructed, tmp_path):
  """A slow video of the orbit (each of the 24 views held for 3 frames): every 3rd frame, matched
  sequentially, downscaled to 200 px."""
  photos = os.path.join(os.path.dirname(os.path.dirname(reconstructed[2])), 'photos')
  views = [iio.imread(os.path.join(photos, f'view_{i:03d}.png')) for i in range(NUM_VIEWS)]
  video = str(tmp_path / 'orbit.mp4')
  iio.imwrite(video, np.stack([v for v in views for _ in range(3)]), fps=10, codec='libx264',
              macro_block_size=2)
  report = sfm.run(video, str(tmp_path / 'scene'), every=3, max_size=200)
  extracted = [f'frame_{i:05d}.jpg' for i in range(0, 3 * NUM_VIEWS, 3)]
  placed = sorted(os.listdir(tmp_path / 'scene' / 'images'))
  assert sorted(placed + report['unregistered']) == extracted and report['images'] == NUM_VIEWS
  assert report['matcher'] == 'sequential' and len(placed) == report['registered'] >= NUM_VIEWS - 2
  assert iio.imread(tmp_path / 'scene' / 'images' / placed[0]).shape == (200, 200, 3)  # --max-size


def test_train_command():
  assert sfm.train_command('data/mine/garden/') == ('python main.py --config configs/colmap_fast_cpu.py '
                                                   '--config.data.root=data/mine --config.data.scene=garden')
