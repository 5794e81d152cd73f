"""The debugging modes on the generated scene: orbit videos, dataset and network checks, the extra logs."""

import glob
import json
import os
import shutil

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from nerf_jax import batching, checks, evaluate, tasks, train, video
from nerf_jax.cameras import pinhole
from tests.conftest import override, small_fit_config, small_nerf_config
from tests.test_main import run_main


@pytest.fixture(scope='module')
def trained(trained_models):
  config, workdir = trained_models.get('nerf_60')
  state, _ = train.load_state(config, tasks.make_task(config), workdir)
  return config, state, workdir


def test_render_writes_orbit_and_depth_videos_of_the_requested_length(trained):
  config, _, workdir = trained
  config = override(config, **{'render.frames': 6})
  task = tasks.make_task(config)
  state, source = train.load_state(config, task, workdir)
  assert 'step 60' in source
  paths = video.render_path(task, state.variables, config.render, os.path.join(workdir, 'render'),
                             config.eval)
  assert sorted(os.path.basename(p) for p in paths) == ['orbit.gif', 'orbit.json', 'orbit.mp4',
                                                        'orbit_depth.gif', 'orbit_depth.mp4']
  videos = [p for p in paths if not p.endswith('.json')]
  for path in videos:
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (6, 32, 32), (path, frames.shape)
  colour = iio.imread(videos[1], index=None)[..., :3].astype(float)
  assert np.abs(np.diff(colour, axis=0)).mean() > 1.0  # the camera moves: frames differ


def test_orbit_poses_circle_the_origin_looking_at_it():
  poses = video.orbit_poses(8, 4.0, 30.0)
  np.testing.assert_allclose(np.linalg.norm(poses[:, :3, 3], axis=-1), 4.0, rtol=1e-5)
  np.testing.assert_allclose(poses[:, 2, 3], 4.0 * np.sin(np.radians(30.0)), rtol=1e-5)
  centre, angles = pinhole.look_at_centre(poses)
  np.testing.assert_allclose(centre, 0.0, atol=1e-4)
  assert angles.max() < 1e-2


def _copy_scene(spheres_root, tmp_path):
  # Under another name: a missing 'spheres' would be regenerated as the built-in scene.
  root = tmp_path / 'data'
  shutil.copytree(os.path.join(spheres_root, 'spheres'), root / 'copy')
  return str(root)


def test_dataset_check_passes_a_good_scene_and_draws_it(spheres_root, tmp_path):
  config = small_nerf_config(spheres_root)
  report, problems = checks.check_dataset(config, str(tmp_path))
  assert problems == []
  assert report['train']['views'] == 8 and report['train']['height'] == 32
  assert iio.imread(tmp_path / 'cameras.png').shape == (400, 800, 3)
  precrop = iio.imread(tmp_path / 'precrop.png')
  assert precrop.shape == (32, 32, 3) and (precrop[8, 8:24] == [230, 30, 30]).all()


def test_dataset_check_flags_world_to_camera_poses(spheres_root, tmp_path):
  root = _copy_scene(spheres_root, tmp_path)
  path = os.path.join(root, 'copy', 'transforms_train.json')
  with open(path) as f:
    meta = json.load(f)
  for frame in meta['frames']:
    frame['transform_matrix'] = np.linalg.inv(np.asarray(frame['transform_matrix'])).tolist()
  with open(path, 'w') as f:
    json.dump(meta, f)
  _, problems = checks.check_dataset(small_nerf_config(root, **{'data.scene': 'copy'}), str(tmp_path / 'out'))
  assert len(problems) == 1 and problems[0].startswith('train:') and 'common centre' in problems[0]


def test_dataset_check_flags_removed_alpha_and_a_bad_near_far(spheres_root, tmp_path):
  root = _copy_scene(spheres_root, tmp_path)
  for path in glob.glob(os.path.join(root, 'copy', 'val', '*.png')):
    image = iio.imread(path)
    image[..., 3] = 255
    iio.imwrite(path, image)
  _, problems = checks.check_dataset(small_nerf_config(root, **{'data.scene': 'copy'}), str(tmp_path / 'out'))
  assert len(problems) == 1 and problems[0].startswith('val:') and 'alpha channel was lost' in problems[0]
  _, problems = checks.check_dataset(small_nerf_config(spheres_root, **{'data.near': 4.5}), str(tmp_path))
  assert problems and all('outside data.near=4.5' in p for p in problems)


def test_dataset_mode_from_the_command_line(spheres_root, tmp_path):
  root = _copy_scene(spheres_root, tmp_path)
  os.remove(os.path.join(root, 'copy', 'transforms_test.json'))
  code, out = run_main('--config', 'configs/demo_nerf.py', f'--config.data.root={root}',
                       '--config.data.scene=copy', '--mode=dataset',
                       f'--workdir={tmp_path / "run"}')
  assert code != 0 and 'train: ' in out and 'PROBLEM: test:' in out and 'Traceback' not in out
  assert os.path.isfile(tmp_path / 'run' / 'checks' / 'cameras.png')


def _with_density_bias(params, value):
  params = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
  for net in ('coarse', 'fine'):
    params['params'][net]['density']['bias'] = np.full_like(params['params'][net]['density']['bias'], value)
  return params


def test_network_check_flags_dead_and_opaque_density(spheres_root):
  config = small_nerf_config(spheres_root, **{'eval.chunk': 256})
  task = tasks.make_task(config)
  params = train.create_train_state(config, task).params
  report, problems = checks.check_network(task, params, config)
  assert problems == [], problems
  assert report['parameters'] == sum(np.size(x) for x in jax.tree_util.tree_leaves(params))
  assert report['forward_flops_per_ray'] > 0 and report['rays_per_second'] > 0
  assert 0.05 < report['opacity_centre_rays'] < 0.99
  _, problems = checks.check_network(task, _with_density_bias(params, -30.0), config)
  assert len(problems) == 1 and problems[0].startswith('DEAD DENSITY')
  _, problems = checks.check_network(task, _with_density_bias(params, 30.0), config)
  assert len(problems) == 1 and problems[0].startswith('OPAQUE EVERYWHERE')


def test_training_logs_depth_opacity_and_density_and_evaluation_reports_speed(trained):
  from tensorboard.backend.event_processing import event_accumulator
  config, _, workdir = trained
  events = event_accumulator.EventAccumulator(workdir, size_guidance={'histograms': 0, 'images': 0})
  events.Reload()
  tags = events.Tags()
  assert {'eval/gt_pred', 'eval/depth', 'eval/acc'} <= set(tags['images'])
  assert 'eval/density' in tags['histograms']
  assert 'train/opacity_collapsed' in tags['scalars']
  assert [e.step for e in events.Images('eval/depth')] == [30, 60]
  with open(os.path.join(workdir, 'eval', 'val_step60', 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['seconds_per_image'] > 0 and metrics['rays_per_second'] > 0 and metrics['devices'] == 1


def test_opacity_collapse_is_noticed_only_after_precrop(spheres_root):
  task = tasks.make_task(small_nerf_config(spheres_root))
  plan = batching.BatchPlan(batch_size=512, precrop_steps=20)
  alarm = lambda acc, step: task.alarms({'acc': acc}, step, plan)['opacity_collapsed']
  assert 'mean opacity of the batch is 0.001' in alarm(0.001, 50)
  assert alarm(0.001, 10) is None and alarm(0.4, 50) is None
  # Image fitting has no opacity: no alarm to raise.
  assert tasks.make_task(small_fit_config(spheres_root)).alarms({'psnr': 20.0}, 50, plan) == {}


def test_mesh_and_pointcloud_modes_write_files_that_open(trained, capsys):
  import trimesh
  import main  # tests/test_docs.py imports it the same way (the repository is on sys.path)
  config, state, workdir = trained
  task = tasks.make_task(config)
  report, _ = checks.check_network(task, state.variables, config)
  threshold = report['suggested_mesh_threshold']
  config = override(config, **{'mesh.resolution': 32, 'mesh.threshold': threshold,
                               'pointcloud.min_opacity': 0.5, 'pointcloud.views': (0, -1, 2)})
  main.export('mesh', config, workdir)
  main.export('pointcloud', config, workdir)
  out = capsys.readouterr().out
  assert 'vertices: ' in out and 'points: ' in out
  mesh = trimesh.load(os.path.join(workdir, 'mesh', 'step60', 'mesh.ply'))
  assert len(mesh.faces) > 100 and os.path.isfile(os.path.join(workdir, 'mesh', 'step60', 'mesh.obj'))
  # The object sits inside the cameras' sphere: the mesh within the sampled box, around the origin.
  assert np.all(np.abs(mesh.vertices) < 2.1)
  cloud = trimesh.load(os.path.join(workdir, 'pointcloud', 'step60', 'pointcloud.ply'))
  assert len(cloud.vertices) > 100 and np.median(np.linalg.norm(cloud.vertices, axis=-1)) < 1.5


def test_evaluation_names_the_worst_view_and_the_median(trained, capsys):
  config, _, workdir = trained
  config = override(config, **{'eval.views': (0, -1, 1)})
  capsys.readouterr()
  result = train.evaluate_checkpoint(config, workdir)
  line = [l for l in capsys.readouterr().out.splitlines() if l.startswith('Evaluation at step 60')]
  psnrs = {name: v['psnr'] for name, v in result['views'].items()}
  worst = min(psnrs, key=psnrs.get)
  photo = f'r_{worst[-1]}'  # the built-in scene's val_00i is its photo r_i
  assert len(psnrs) == 2 and result['worst_view'] == {'name': worst, 'source': photo, **result['views'][worst]}
  assert result['psnr_median'] == pytest.approx(np.median(list(psnrs.values())))
  assert len(line) == 1 and (f'median {result["psnr_median"]:.2f} dB, worst view {worst} ({photo}) '
                             f'{psnrs[worst]:.2f} dB / SSIM {result["views"][worst]["ssim"]:.4f}') in line[0]
  with open(os.path.join(workdir, 'eval', 'val_step60', 'metrics.json')) as f:
    assert json.load(f)['worst_view']['name'] == worst
  # The logs (_log_evaluation writes every image) show the worst view's pair beside the first's.
  task = tasks.make_task(config)
  _, images = evaluate.Evaluator(task, 1024).run(train.load_state(config, task, workdir)[0].variables, 'val',
                                                 (0, -1, 1))
  assert ('worst_gt_pred' in images) == (worst != next(iter(psnrs)))
  if 'worst_gt_pred' in images:
    assert images['worst_gt_pred'].shape == images['gt_pred'].shape


def test_the_shared_store_trains_once_and_hands_out_copies(trained_models):
  (config, first), (_, second) = trained_models.get('nerf_60'), trained_models.get('nerf_60')
  assert first != second and os.path.isfile(os.path.join(trained_models.root, 'nerf_60', '.complete'))
  for workdir in (first, second):
    assert os.path.isdir(os.path.join(workdir, 'checkpoints', '60')) and not os.path.exists(
        os.path.join(workdir, 'train.lock'))
  shutil.rmtree(os.path.join(first, 'checkpoints'))  # what one file does to its copy, no other sees
  assert os.path.isdir(os.path.join(second, 'checkpoints', '60'))
  task = tasks.make_task(config)
  assert int(train.load_state(config, task, second)[0].step) == 60
