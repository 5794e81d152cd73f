"""--mode dataset and --mode network: look at the data and the network before (or instead of) training.

Each check returns a report dict and a list of problems (strings naming what is wrong and what to do);
main.py prints them and the pictures go under workdir/checks/.
"""

import os
import time

import imageio.v3 as iio
import jax
import numpy as np

from nerf_jax import batching, datasets, evaluate, parallel
from nerf_jax.cameras import pinhole
from nerf_jax.errors import ConfigError, DatasetError


def pose_problems(split, poses, near, far, max_angle=15.0):
  """Problems with a split's poses: cameras that do not look at a common centre (world-to-camera
  matrices, or a flipped axis, do this) and a near/far that misses that centre."""
  problems = []
  centre, angles = pinhole.look_at_centre(poses)
  off = angles > max_angle
  if off.mean() > 0.1:
    problems.append(
        f'{split}: {int(off.sum())} of {len(poses)} cameras do not look at a common centre (median '
        f'angle {np.median(angles):.0f} deg between a camera\'s -Z axis and the point nearest all axes). '
        f'transform_matrix must be camera-to-world with the camera looking down -Z (OpenGL/Blender); '
        f'world-to-camera or +Z-forward (OpenCV) poses give this.')
    return problems
  distances = np.linalg.norm(poses[:, :3, 3] - centre, axis=-1)
  if distances.min() <= near or distances.max() >= far:
    problems.append(
        f'{split}: the scene centre is {distances.min():.2f} to {distances.max():.2f} from the cameras, '
        f'outside data.near={near} .. data.far={far}: rays would sample around it but miss it. Set near '
        f'and far to bracket the object.')
  return problems


def forward_problems(split, poses, max_angle=45.0):
  """Problems with a forward-facing split's poses: cameras that do not look the way the others do (a
  world-to-camera matrix or a flipped axis turns a camera around)."""
  angles = pinhole.angles_from_mean_direction(poses)
  off = angles > max_angle
  if not off.any():
    return []
  return [f'{split}: {int(off.sum())} of {len(poses)} cameras of this forward-facing capture look more '
          f'than {max_angle:.0f} deg away from the others\' mean direction (up to {angles.max():.0f} deg). '
          f'Poses must be camera-to-world with the camera looking down -Z (OpenGL); world-to-camera or '
          f'OpenCV (+Z forward) poses give this.']


def alpha_problems(split, names, alphas):
  """Images whose alpha is all 0 (nothing to fit) or all 1 (no transparency: alpha removed)."""
  problems = []
  empty = [n for n, a in zip(names, alphas) if a.max() < 1.0 / 255]
  full = [n for n, a in zip(names, alphas) if a.min() > 1.0 - 1.0 / 255]
  if empty:
    problems.append(f'{split}: {len(empty)} image(s) with alpha 0 everywhere (e.g. {empty[0]}): the '
                    f'object is invisible in them.')
  if len(full) == len(names):
    problems.append(f'{split}: every image has alpha 1 everywhere: the alpha channel was lost, so the '
                    f'background is baked in and white compositing cannot work.')
  return problems


def _canvas(size):
  return np.full((size, size, 3), 255, np.uint8)


def _plot(canvas, points, colour, extent):
  """Draws 2-D points (float [K, 2] in [-extent, extent]) as 3x3 squares; y grows upwards."""
  size = canvas.shape[0]
  pixels = np.round((points / extent * 0.5 + 0.5) * (size - 1)).astype(int)
  for x, y in pixels:
    r = size - 1 - y
    canvas[max(r - 1, 0):r + 2, max(x - 1, 0):x + 2] = colour


def camera_picture(poses, centre, near, far, size=400):
  """Top (x, y) and side (x, z) views of camera centres (black), viewing directions (blue, length
  near) and the sampled region (red circles: near and far around the mean camera distance).

  returns uint8 [size, 2 * size, 3]
  """
  centres = poses[:, :3, 3] - centre
  forward = -poses[:, :3, 2]
  radius = float(np.mean(np.linalg.norm(centres, axis=-1)))
  extent = 1.2 * max(radius, far - radius, 1e-6)
  panels = []
  for axes in ((0, 1), (0, 2)):
    canvas = _canvas(size)
    t = np.linspace(0, 2 * np.pi, 400)
    circle = np.stack([np.cos(t), np.sin(t)], -1)
    for r in (radius - near, radius - far if far < radius else None):
      if r is not None and r > 0:
        _plot(canvas, r * circle, (220, 40, 40), extent)
    steps = np.linspace(0, near, 20)[None, :, None]
    lines = centres[:, None, :] + steps * forward[:, None, :]
    _plot(canvas, lines[..., axes].reshape(-1, 2), (40, 80, 220), extent)
    _plot(canvas, centres[:, axes], (0, 0, 0), extent)
    _plot(canvas, np.zeros((1, 2)), (220, 40, 40), extent)
    panels.append(canvas)
  return np.concatenate(panels, axis=1)


def forward_picture(poses, near, far, size=400):
  """Top (x, z) and side (y, z) views of a forward-facing rig: camera centres (black), viewing
  directions (blue, as long as far) and the near and far depths of the mean camera (red lines).

  poses: float [N, 4, 4] camera-to-world. returns uint8 [size, 2 * size, 3]
  """
  centre = poses[:, :3, 3].mean(0)
  centres = poses[:, :3, 3] - centre
  forward = -poses[:, :3, 2] / np.linalg.norm(poses[:, :3, 2], axis=-1, keepdims=True)
  extent = 1.1 * max(far, np.abs(centres).max(), 1e-6)
  mean = forward.mean(0) / np.linalg.norm(forward.mean(0))
  panels = []
  for axes in ((0, 2), (1, 2)):
    canvas = _canvas(size)
    across = np.linspace(-extent, extent, 200)[:, None]
    for depth in (near, far):
      plane = depth * mean[None, :] + across * np.eye(3)[axes[0]][None, :]
      _plot(canvas, plane[:, axes], (220, 40, 40), extent)
    steps = np.linspace(0, far, 40)[None, :, None]
    lines = centres[:, None, :] + steps * forward[:, None, :]
    _plot(canvas, lines[..., axes].reshape(-1, 2), (40, 80, 220), extent)
    _plot(canvas, centres[:, axes], (0, 0, 0), extent)
    panels.append(canvas)
  return np.concatenate(panels, axis=1)


def precrop_picture(image, frac):
  """image float [H, W, 3] with the precrop box (precrop_frac of each side, centred) drawn in red."""
  out = evaluate.to_uint8(image).copy()
  row0, rows, col0, cols = batching.crop_box(image.shape[0], image.shape[1], frac)
  red = np.array([230, 30, 30], np.uint8)
  out[row0, col0:col0 + cols] = out[row0 + rows - 1, col0:col0 + cols] = red
  out[row0:row0 + rows, col0] = out[row0:row0 + rows, col0 + cols - 1] = red
  return out


def check_dataset(config, out_dir, splits=None):
  """Loads each split, checks it and draws the training split. Returns (report {split: facts}, problems).

  splits: default, the ones the config reads: data.split, eval.train_split and eval.split.
  """
  data = config.data
  if splits is None:  # the training split first: its bounds are every split's
    splits = list(dict.fromkeys([data.split, config.eval.train_split, config.eval.split]))
  report, problems, scenes = {}, [], {}
  for split in splits:
    try:
      scene = datasets.load_split(data, split)
    except DatasetError as e:
      problems.append(f'{split}: {e}')
      continue
    scenes[split] = scene
    fx, fy, cx, cy = np.round(scene.intrinsics.mean(axis=0), 3).tolist()
    try:  # the bounds every split is rendered with: the training split's (tasks.nerf.NerfTask)
      near, far = datasets.sampling_bounds(data, scenes.get(data.split, scene))
    except ConfigError as e:
      problems.append(f'{split}: {e}')
      near, far = data.near, data.far
    if split == data.split:
      bounds = (near, far)
    report[split] = {'views': len(scene.names), 'height': scene.height, 'width': scene.width,
                     'intrinsics (mean fx, fy, cx, cy)': (fx, fy, cx, cy), 'layout': scene.layout,
                     'samples between (near, far)': (round(near, 3), round(far, 3)) if not data.ndc
                     else 'NDC depth 0 .. 1 (the world from the near plane z = -1 to infinity)'}
    if scene.near is not None:
      report[split]['near, far per view (the data\'s)'] = ', '.join(
          f'{name} {n:.2f}-{f:.2f}' for name, n, f in zip(scene.names, scene.near, scene.far))
    # A common centre is what inward-looking cameras share; forward-facing captures have none.
    if scene.layout == 'inward':
      problems += pose_problems(split, scene.poses, near, far)
    else:
      problems += forward_problems(split, scene.poses)
      if data.bounds == 'config' and not data.ndc and scene.near is not None and (
          data.near > scene.near.min() or data.far < scene.far.max()):
        problems.append(f'{split}: data.near={data.near} .. data.far={data.far} cuts off the scene\'s own '
                        f'bounds {scene.near.min():.2f} .. {scene.far.max():.2f}: set data.bounds=\'scene\' '
                        f'(or data.ndc=True for a forward-facing capture).')
    if scene.alphas is not None:
      problems += alpha_problems(split, scene.names, scene.alphas)
  if data.split in scenes and parallel.is_main_process():
    os.makedirs(out_dir, exist_ok=True)
    scene = scenes[data.split]
    if scene.layout == 'inward':  # the picture's circles are drawn around the common centre
      centre, _ = pinhole.look_at_centre(scene.poses)
      picture = camera_picture(scene.poses, centre, *bounds)
    else:  # depths in the world, whatever NDC makes of them
      depths = (np.min(scene.near), np.max(scene.far)) if scene.near is not None else (data.near, data.far)
      picture = forward_picture(scene.poses, *depths)
    iio.imwrite(os.path.join(out_dir, 'cameras.png'), picture)
    iio.imwrite(os.path.join(out_dir, 'precrop.png'), precrop_picture(scene.images[0], config.train.precrop_frac))
  return report, problems


def check_network(task, params, config, mesh=None, repeats=3, trained=None):
  """Size, cost and speed of a network, and what the task checks of it (task.inspect: NeRF's opacity
  through the cameras). Returns (report dict, problems).

  params: the variables (TrainState.variables); trained: the trained collections among them
  (TrainState.params: the fields' and a camera model's), whose sizes are counted; default: 'params'.
  The parameter count comes from the parameters and the FLOPs from the traced prediction, so any
  field or encoding is measured as it is.
  """
  # Trained parameters only: a task's own state (an occupancy grid) is no part of the network's size.
  trained = params.get('params', params) if trained is None else trained
  report = {'parameters': int(sum(np.size(x) for x in jax.tree_util.tree_leaves(trained))),
            f'forward_flops_per_{task.item}': int(round(task.forward_flops(params)))}
  evaluator = evaluate.Evaluator(task, config.eval.chunk, mesh, microbatches=config.eval.microbatches)
  view = next(task.eval_views(config.data.split, (0, 1, 1)))
  inputs = jax.tree_util.tree_map(lambda x: np.resize(x, (config.eval.chunk, *x.shape[1:])), view.inputs)
  evaluator.predict(params, inputs)  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    evaluator.predict(params, inputs)
  seconds = (time.perf_counter() - start) / repeats
  report['chunk'] = config.eval.chunk
  report['forward_seconds_per_chunk'] = round(seconds, 4)
  report[f'{task.item}s_per_second'] = round(config.eval.chunk / seconds, 1)
  task_report, problems = task.inspect(params, evaluator.predict)
  report.update(task_report)
  return report, problems
