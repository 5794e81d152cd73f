"""LLFF format: poses_bounds.npy axes and scale, the hold-out split, NDC rays, lindisp, the spiral, the
real fern scene, and bad input."""

import os

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from nerf_jax import datasets, sampling
from nerf_jax.cameras import pinhole
from nerf_jax.datasets import generated, llff
from nerf_jax.errors import ConfigError, DatasetError
from nerf_jax.types import Rays
from tests.conftest import REPO, override, small_nerf_config, train_on_a_fixed_batch

FERN_ROOT = os.environ.get('NERF_JAX_LLFF_DATA', os.path.join(REPO, '..', 'shared', 'data', 'nerf_llff_data'))
FULL_H, FULL_W, FACTOR = 96, 128, 4  # the "photos" and the downsampled copies the loader reads
FULL_FOCAL = 110.0


def true_poses(num_views):
  """Forward-facing cameras in generated.py's world (+Z up): a 3 x N grid in the plane y = -4, all
  looking along +Y at the spheres. float64 [N, 4, 4] camera-to-world (OpenGL)."""
  poses = []
  for i in range(num_views):
    offset = np.array([0.25 * (i % 4 - 1.5), 0.0, 0.2 * (i // 4 - 1)])
    position = np.array([0.0, -4.0, 0.0]) + offset
    poses.append(pinhole.look_at_pose(position, target=position + [0.1 * offset[0], 4.0, 0.0]))
  return np.stack(poses)


def to_llff(pose):
  """An OpenGL camera-to-world [4, 4] as LLFF stores it: columns [down, right, back, centre]."""
  right, up, back, centre = (pose[:3, i] for i in range(4))
  return np.stack([-up, right, back, centre], axis=-1)


def write_llff(scene_dir, num_views=10, folder=f'images_{FACTOR}', bounds=(2.4, 6.0)):
  """The built-in spheres seen by forward-facing cameras, written as an LLFF scene: the images at
  1 / FACTOR of the "photos" (composited on white: LLFF images are opaque) and poses_bounds.npy with
  the photos' size. Returns the true poses."""
  os.makedirs(os.path.join(scene_dir, folder), exist_ok=True)
  poses = true_poses(num_views)
  height, width = (FULL_H, FULL_W) if folder == 'images' else (FULL_H // FACTOR, FULL_W // FACTOR)
  focal = FULL_FOCAL * height / FULL_H
  rows = []
  for i, pose in enumerate(poses):
    origins, directions = generated.pixel_rays(pose, height, width, focal)
    rgb, alpha = generated.shade(origins, directions)
    image = rgb * alpha[..., None] + (1 - alpha[..., None])
    iio.imwrite(os.path.join(scene_dir, folder, f'img{i:03d}.png'), np.round(image * 255).astype(np.uint8))
    hwf = np.array([[FULL_H], [FULL_W], [FULL_FOCAL]])
    rows.append(np.concatenate([np.concatenate([to_llff(pose), hwf], 1).ravel(), bounds]))
  np.save(os.path.join(scene_dir, 'poses_bounds.npy'), np.array(rows))
  return poses


def llff_config(root, **values):
  config = override(default.get_config(), **{'data.format': 'llff', 'data.root': root, 'data.scene': 'fwd',
                                             'data.factor': FACTOR, 'data.white_bkgd': False})
  return override(config, **values)


@pytest.fixture(scope='module')
def llff_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('llff')
  write_llff(str(root / 'fwd'))
  return str(root)


def test_poses_round_trip_through_poses_bounds(llff_root):
  """The loader's pose, moved back by its recentring and rescaling, is the pose that was written."""
  truth = true_poses(10)
  scene = llff.load_scene(os.path.join(llff_root, 'fwd'), FACTOR)
  average = np.concatenate([scene['average'], [[0, 0, 0, 1]]])
  back = average @ scene['poses'].astype(np.float64)
  np.testing.assert_allclose(back[:, :3, :3], truth[:, :3, :3], atol=1e-5)
  np.testing.assert_allclose(back[:, :3, 3] / scene['scale'], truth[:, :3, 3], atol=1e-5)
  # NeRF's rescaling: the nearest bound at 1 / 0.75 (the near returned carries the 0.9 margin).
  np.testing.assert_allclose(scene['near'].min() / llff.NEAR_MARGIN, 1 / llff.BD_FACTOR, rtol=1e-6)
  # Recentred: the average camera is the identity.
  np.testing.assert_allclose(llff.average_pose(scene['poses'].astype(np.float64)), np.eye(4)[:3], atol=1e-5)


def test_loaded_rays_pass_through_the_pixels_they_name(llff_root):
  """Each pixel's ray from the loaded pose and intrinsics, taken back to the renderer's world, is the ray
  the renderer shaded that pixel with (so the focal was scaled to the images read, H and W kept apart),
  and its shade is the loaded pixel."""
  scene = llff.load_scene(os.path.join(llff_root, 'fwd'), FACTOR)
  truth = true_poses(10)
  images = scene['images']
  height, width = images.shape[1:3]
  assert (height, width) == (FULL_H // FACTOR, FULL_W // FACTOR)
  np.testing.assert_allclose(scene['intrinsics'][0], [FULL_FOCAL / FACTOR] * 2 + [width / 2, height / 2])
  rows, cols = pinhole.pixel_grid(height, width)
  average = np.concatenate([scene['average'], [[0, 0, 0, 1]]])
  for i in (0, 5, 9):
    rays = pinhole.rays_from_pixels(scene['poses'][i], scene['intrinsics'][i], rows, cols)
    directions = np.asarray(rays.directions, np.float64) @ average[:3, :3].T
    origins = (np.asarray(rays.origins, np.float64) @ average[:3, :3].T + average[:3, 3]) / scene['scale']
    true_origins, true_directions = generated.pixel_rays(truth[i], height, width, FULL_FOCAL / FACTOR)
    np.testing.assert_allclose(directions, true_directions, atol=1e-5)
    np.testing.assert_allclose(origins, true_origins, atol=1e-5)
    rgb, alpha = generated.shade(origins, directions)
    shaded = rgb * alpha[..., None] + (1 - alpha[..., None])
    assert alpha.mean() > 0.05  # the views see the spheres
    np.testing.assert_allclose(images[i], shaded, atol=0.5 / 255 + 1e-6)


def test_every_eighth_image_is_held_out(llff_root):
  config = llff_config(llff_root)
  train = datasets.load_split(config.data, 'train')
  test = datasets.load_split(config.data, 'test')
  assert test.names == ('img000.png', 'img008.png')
  assert len(train.names) == 8 and not set(train.names) & set(test.names)
  assert train.layout == 'forward' and train.alphas is None and train.near.shape == (8,)
  assert datasets.load_split(config.data, 'test', views=[1]).names == ('img008.png',)
  with pytest.raises(DatasetError, match="no split 'val'"):
    datasets.load_split(config.data, 'val')
  all_train = override(config, **{'data.llffhold': 0})
  assert len(datasets.load_split(all_train.data, 'train').names) == 10


def test_full_size_images_are_resized_where_the_factor_folder_is_missing(tmp_path):
  write_llff(str(tmp_path / 'fwd'), folder='images')
  scene = datasets.load_split(llff_config(str(tmp_path)).data, 'train')
  assert scene.images.shape[1:3] == (FULL_H // FACTOR, FULL_W // FACTOR)
  np.testing.assert_allclose(scene.intrinsics[0, 0], FULL_FOCAL / FACTOR)


def test_ndc_maps_points_of_a_ray_onto_its_ndc_ray():
  """Closed form: a world point (x, y, z) in front of the near plane maps to (-ax x / z, -ay y / z,
  1 + 2 near / z); every point of a world ray lands on the NDC ray at t = 1 - oz / z (oz: where the ray
  crosses the near plane), t in [0, 1) from the near plane to infinity."""
  rng = np.random.default_rng(0)
  origins = np.concatenate([rng.uniform(-0.3, 0.3, (50, 2)), rng.uniform(-0.2, 0.2, (50, 1))], 1)
  directions = np.concatenate([rng.uniform(-0.4, 0.4, (50, 2)), -np.ones((50, 1))], 1)
  intrinsics = np.array([40.0, 44.0, 16.0, 12.0])
  rays = Rays(origins=origins, directions=directions,
              viewdirs=directions / np.linalg.norm(directions, axis=-1, keepdims=True))
  ndc = pinhole.ndc_rays(rays, intrinsics, near=1.0)
  np.testing.assert_array_equal(ndc.viewdirs, rays.viewdirs)
  ax, ay = intrinsics[0] / intrinsics[2], intrinsics[1] / intrinsics[3]
  oz = -1.0  # every ray starts on the near plane z = -near
  for s in (1.5, 3.0, 10.0, 1e4):
    points = origins + s * directions
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    expected = np.stack([-ax * x / z, -ay * y / z, 1 + 2 / z], -1)
    t = 1 - oz / z
    assert np.all((t >= 0) & (t < 1))
    np.testing.assert_allclose(np.asarray(ndc.origins) + t[:, None] * np.asarray(ndc.directions), expected,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pinhole.world_from_ndc(expected, intrinsics), points, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(ndc.origins)[:, 2], -1.0, atol=1e-6)  # near plane -> depth -1 in NDC


def test_lindisp_samples_are_even_in_inverse_depth():
  z = np.asarray(sampling.stratified_samples(None, 2.0, 8.0, 16, (3,), lindisp=True))
  edges_z = np.asarray(sampling.stratified_samples(jax.random.PRNGKey(0), 2.0, 8.0, 16, (500,), lindisp=True))
  assert z.shape == (3, 16) and np.all(np.diff(z, axis=-1) > 0)
  gaps = np.diff(1.0 / z[0])
  # Bin centres in depth are not exactly even in 1/z, but the bins are: check the jittered samples
  # stay in bins whose 1/z edges are even.
  t = np.linspace(0, 1, 17)
  edges = 1 / ((1 - t) / 2.0 + t / 8.0)
  bins = np.searchsorted(edges, edges_z) - 1
  np.testing.assert_array_equal(bins, np.broadcast_to(np.arange(16), bins.shape))
  assert gaps[0] < 0 and abs(gaps[0] / gaps[-1] - 1) < 0.1
  linear = np.asarray(sampling.stratified_samples(None, 2.0, 8.0, 16, (1,)))
  np.testing.assert_allclose(np.diff(linear[0]), 6.0 / 16, rtol=1e-5)


def test_spiral_faces_the_scene_and_spreads_like_the_cameras(llff_root):
  scene = datasets.load_split(llff_config(llff_root).data, 'train')
  poses = llff.spiral_poses(scene.poses, scene.near.min(), scene.far.max(), 30)
  assert poses.shape == (30, 4, 4)
  for pose in poses:
    np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-5)
    assert pose[2, 2] > 0.95  # looking down -Z, as the recentred cameras do
  # Around the training cameras' average, as far out as 90 % of them: NeRF's radii.
  centre = llff.average_pose(scene.poses)[:, 3]
  radii = np.percentile(np.abs(scene.poses[:, :3, 3] - centre), 90, axis=0)
  reach = np.abs(poses[:, :3, 3] - centre).max(0)
  np.testing.assert_allclose(reach[:2], radii[:2], rtol=0.01, atol=1e-3)


def test_nerf_on_an_ndc_scene_trains_and_renders_disparity(llff_root, spheres_root, tmp_path):
  """The NeRF task on the LLFF scene in NDC: samples in [0, 1], rays on the near plane, a loss that falls
  and a disparity map; NDC on an inward scene is refused."""
  from nerf_jax import checks, tasks, train, video
  config = small_nerf_config(llff_root, **{
      'data.format': 'llff', 'data.scene': 'fwd', 'data.factor': FACTOR, 'data.input_ratio': 1.0,
      'data.white_bkgd': False, 'data.ndc': True, 'model.density_noise': 1.0, 'train.steps': 60,
      'train.precrop_steps': 0, 'eval.split': 'test', 'eval.train_split': 'test'})
  task, params, before, after = train_on_a_fixed_batch(config, str(tmp_path))
  assert (task.model.near, task.model.far) == (0.0, 1.0)
  view = next(task.eval_views('test', (0, 1, 1)))
  np.testing.assert_allclose(view.inputs.origins[:, 2], -1.0, atol=1e-5)
  outputs = {'rgb': np.zeros((24, 32, 3)), 'depth': np.full((24, 32), 0.5), 'acc': np.ones((24, 32))}
  assert set(task.extra_images(outputs)) == {'disparity', 'acc'}
  assert after < 0.5 * before, (before, after)
  # Evaluation writes disparity maps; --mode render draws the spiral (render.path 'auto').
  train.evaluate_checkpoint(config, str(tmp_path))
  assert iio.imread(str(tmp_path / 'eval' / 'test_step60' / 'test_000_disparity.png')).shape == (24, 32)
  paths = video.render_path(task, params, override(config, **{'render.frames': 4}).render,
                            str(tmp_path / 'render'), config.eval)
  assert sorted(os.path.basename(p) for p in paths) == ['spiral.gif', 'spiral.json', 'spiral.mp4',
                                                        'spiral_depth.gif', 'spiral_depth.mp4']
  assert iio.imread(str(tmp_path / 'render' / 'spiral.mp4'), index=None).shape[:3] == (4, 24, 32)
  report, problems = checks.check_network(task, params, config, repeats=1)  # --mode network
  assert problems == [] and report['opacity_centre_rays'] > 0.5 and 'suggested_mesh_threshold' not in report
  inward = small_nerf_config(spheres_root, **{'data.ndc': True})
  with pytest.raises(ConfigError, match='forward-facing'):
    tasks.make_task(inward)


def test_every_view_shares_one_ndc_mapping(llff_root):
  """A view with other intrinsics (another camera of a COLMAP capture, a camera path with another
  field of view) is mapped into the same NDC space: a world point on its ray lands on its NDC ray where
  the scene's mapping (the first training camera's) puts it."""
  from nerf_jax import tasks
  config = llff_config(llff_root, **{'task': 'nerf', 'data.ndc': True})
  task = tasks.make_task(config)
  pose = task.scene.poses[3]
  other = task.scene.intrinsics[3] * np.array([1.3, 1.3, 1.1, 0.9], np.float32)
  rows, cols = np.array([2, 12, 20]), np.array([5, 16, 30])
  world = pinhole.rays_from_pixels(pose, other, rows, cols)
  ndc = task.rays(pose, other, rows, cols)
  ax, ay = (task.ndc_intrinsics[0] / task.ndc_intrinsics[2], task.ndc_intrinsics[1] / task.ndc_intrinsics[3])
  for s in (2.0, 5.0):
    x, y, z = (np.asarray(world.origins) + s * np.asarray(world.directions)).T
    expected = np.stack([-ax * x / z, -ay * y / z, 1 + 2 / z], -1)
    t = (expected[:, 2] - np.asarray(ndc.origins)[:, 2]) / np.asarray(ndc.directions)[:, 2]
    np.testing.assert_allclose(np.asarray(ndc.origins) + t[:, None] * np.asarray(ndc.directions), expected,
                               atol=1e-5)


def test_bad_llff_input_names_the_file_and_the_fix(tmp_path):
  def config(scene):
    return llff_config(str(tmp_path), **{'data.scene': scene}).data

  write_llff(str(tmp_path / 'missing'))
  os.remove(str(tmp_path / 'missing' / f'images_{FACTOR}' / 'img003.png'))
  with pytest.raises(DatasetError, match=r'poses for 10 images.*holds 9'):
    datasets.load_split(config('missing'), 'train')

  write_llff(str(tmp_path / 'mixed'))
  iio.imwrite(str(tmp_path / 'mixed' / f'images_{FACTOR}' / 'img004.png'), np.zeros((20, 32, 3), np.uint8))
  with pytest.raises(DatasetError, match=r'img004\.png.*one size'):
    datasets.load_split(config('mixed'), 'train')

  write_llff(str(tmp_path / 'swapped'))
  folder = tmp_path / 'swapped' / f'images_{FACTOR}'
  for name in os.listdir(folder):
    iio.imwrite(str(folder / name), np.zeros((FULL_W // FACTOR, FULL_H // FACTOR, 3), np.uint8))
  with pytest.raises(DatasetError, match=r'poses_bounds\.npy.*H and W swapped'):
    datasets.load_split(config('swapped'), 'train')

  os.makedirs(tmp_path / 'empty' / f'images_{FACTOR}')
  np.save(str(tmp_path / 'empty' / 'poses_bounds.npy'), np.load(str(tmp_path / 'mixed' / 'poses_bounds.npy')))
  with pytest.raises(DatasetError, match=r'holds 0'):
    datasets.load_split(config('empty'), 'train')

  os.makedirs(tmp_path / 'nopose' / 'images')
  with pytest.raises(DatasetError, match=r'nopose/poses_bounds\.npy.*missing'):
    datasets.load_split(config('nopose'), 'train')

  write_llff(str(tmp_path / 'bounds'), bounds=(3.0, 2.0))
  with pytest.raises(DatasetError, match=r'bounds.*near < far'):
    datasets.load_split(config('bounds'), 'train')


@pytest.fixture(scope='module')
def fern_root():
  if not os.path.isfile(os.path.join(FERN_ROOT, 'fern', 'poses_bounds.npy')):
    pytest.skip(f'fern not found under {FERN_ROOT!r}; set NERF_JAX_LLFF_DATA to the folder holding fern/')
  return FERN_ROOT


def test_real_fern_loads_from_images_8_alone(fern_root):
  """The real capture: 504x378 images, the focal scaled by 1/8 from the 4032x3024 photos, views 0, 8, 16
  held out, poses rigid and facing the same way (-Z after recentring), bounds ahead of the NDC near plane."""
  data = llff_config(fern_root, **{'data.scene': 'fern', 'data.factor': 8}).data
  train, test = datasets.load_split(data, 'train'), datasets.load_split(data, 'test')
  assert test.names == ('image000.png', 'image008.png', 'image016.png') and len(train.names) == 17
  assert train.images.shape == (17, 378, 504, 3)
  raw = np.load(os.path.join(fern_root, 'fern', 'poses_bounds.npy'))
  np.testing.assert_allclose(train.intrinsics[0], [raw[0, 14] / 8, raw[0, 14] / 8, 252, 189], rtol=1e-6)
  backs = train.poses[:, :3, 2]
  assert np.all(backs[:, 2] > 0.9)  # every camera looks down -Z, the average view direction
  assert train.near.min() > 1.0  # NDC's near plane at 1 is in front of the scene
  # The average camera's image spans NDC's [-1, 1] square (to half a pixel).
  rays = pinhole.ndc_rays(pinhole.image_rays(np.eye(4), train.intrinsics[0], 378, 504), train.intrinsics[0])
  corners = np.asarray(rays.origins)[[0, 0, -1, -1], [0, -1, 0, -1], :2]
  np.testing.assert_allclose(np.abs(corners), 1.0, atol=0.01)


def test_dataset_mode_draws_a_forward_rig_and_shows_each_views_bounds(llff_root, tmp_path):
  """--mode dataset on a forward-facing capture: no false 'not looking at a common centre', the
  bounds of every view in the report, a picture of the rig; a camera turned around is flagged."""
  from nerf_jax import checks
  config = small_nerf_config(llff_root, **{'data.format': 'llff', 'data.scene': 'fwd', 'data.factor': FACTOR,
                                           'data.input_ratio': 1.0, 'data.ndc': True, 'data.white_bkgd': False,
                                           'eval.split': 'test', 'eval.train_split': 'test'})
  report, problems = checks.check_dataset(config, str(tmp_path))
  assert problems == [], problems
  assert report['train']['layout'] == 'forward'
  bounds = report['train']["near, far per view (the data's)"]
  assert bounds.count('img0') == 8 and 'img001.png 1.' in bounds
  assert iio.imread(str(tmp_path / 'cameras.png')).shape == (400, 800, 3)
  scene = datasets.load_split(config.data, 'train')
  turned = scene.poses.copy()
  turned[2] = np.linalg.inv(turned[2]) @ np.diag([1.0, -1.0, -1.0, 1.0])  # inverted and flipped
  assert checks.forward_problems('train', scene.poses) == []
  assert 'look more than 45 deg away' in ' '.join(checks.forward_problems('train', turned))
  # World-space sampling between the config's 2 .. 6 would cut the near half of this capture off.
  world = override(config, **{'data.ndc': False, 'data.bounds': 'config'})
  _, problems = checks.check_dataset(world, str(tmp_path))
  assert any("set data.bounds='scene'" in p for p in problems), problems
  scene_bounds = override(world, **{'data.bounds': 'scene'})
  assert checks.check_dataset(scene_bounds, str(tmp_path))[1] == []


def test_density_noise_only_while_training():
  """model.density_noise perturbs the densities when rays come with keys (training) and never when
  they do not (evaluation): the same parameters then render exactly what a noise-free model renders."""
  from nerf_jax import fields
  from nerf_jax.samplers.hierarchical import HierarchicalSampler
  config = small_nerf_config('unused', **{'model.num_coarse': 8, 'model.num_fine': 8})
  build = lambda model_config: HierarchicalSampler.build(
      config.data, model_config, 2.0, 6.0, lambda: fields.build_field(model_config, fields.FieldScene()))
  plain, noisy = build(config.model), build(override(config, **{'model.density_noise': 1.0}).model)
  rays = pinhole.image_rays(pinhole.look_at_pose([0.0, -4.0, 0.5]), pinhole.centred_intrinsics(20.0, 4, 4), 4, 4)
  params = plain.init(jax.random.PRNGKey(0), rays)
  keys = jax.random.split(jax.random.PRNGKey(1), 16).reshape(4, 4, 2)
  for a, b in zip(plain.apply(params, rays).values(), noisy.apply(params, rays).values()):
    np.testing.assert_array_equal(a.rgb, b.rgb)
  coarse_noisy = noisy.apply(params, rays, keys)['coarse']
  coarse_plain = plain.apply(params, rays, keys)['coarse']
  np.testing.assert_array_equal(coarse_plain.z_vals, coarse_noisy.z_vals)  # the same samples ...
  assert np.abs(np.asarray(coarse_plain.acc) - np.asarray(coarse_noisy.acc)).max() > 1e-3  # ... other densities


def test_density_noise_needs_a_field_that_takes_it(spheres_root):
  """A plug-in field without a raw_noise argument and model.density_noise > 0: a one-line ConfigError
  when the task is built, not a TypeError inside the jitted step."""
  import flax.linen as nn
  from nerf_jax import fields, tasks
  from nerf_jax.types import FieldOutput

  class Plain(nn.Module):
    @nn.compact
    def __call__(self, points, viewdirs, cond=None):
      return FieldOutput(rgb=jnp.zeros((*points.shape[:-1], 3)), density=jnp.ones(points.shape[:-1]))

  fields.FIELDS.register('plain_test', lambda model_config, encoding, dir_encoding, scene: Plain())
  try:
    config = small_nerf_config(spheres_root, **{'model.field': 'plain_test', 'model.density_noise': 1.0})
    with pytest.raises(ConfigError, match=r"density_noise=1.0 but the field 'plain_test' \(Plain\)"):
      tasks.make_task(config)
    tasks.make_task(override(config, **{'model.density_noise': 0.0}))  # fine without noise
  finally:
    fields.FIELDS.unregister('plain_test')
