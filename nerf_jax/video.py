"""--mode render: a camera path (an orbit around the scene, a spiral before it, or a file), as colour
and depth videos (MP4 and GIF)."""

import os

import imageio.v3 as iio
import numpy as np

from nerf_jax import evaluate, parallel
from nerf_jax.cameras import camera_path, pinhole
from nerf_jax.errors import ConfigError
from nerf_jax.progress import Progress


def orbit_poses(num_frames, radius, elevation_deg, up=(0.0, 0.0, 1.0)):
  """Camera-to-world poses circling the origin at a fixed elevation, looking at it (NeRF's spherical
  path; Blender scenes have +Z up).

  returns float32 [num_frames, 4, 4]; frame 0 is on the +X side, the orbit turns counter-clockwise.
  """
  azimuth = np.linspace(0.0, 2.0 * np.pi, num_frames, endpoint=False)
  elevation = np.radians(elevation_deg)
  positions = radius * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                 np.full_like(azimuth, np.sin(elevation))], axis=-1)
  return np.stack([pinhole.look_at_pose(p, world_up=up) for p in positions]).astype(np.float32)


def orbit_radius(poses):
  """The mean distance of the cameras (float32 [N, 4, 4] camera-to-world) from the origin."""
  return float(np.mean(np.linalg.norm(poses[:, :3, 3], axis=-1)))


def write_video(path_stem, frames, fps, formats):
  """Writes uint8 frames [N, H, W, 3] as path_stem.<format> for each of `formats` ('mp4', 'gif').

  Returns the written paths.
  """
  paths = []
  for fmt in formats:
    path = f'{path_stem}.{fmt}'
    if fmt == 'mp4':
      # macro_block_size 2: H.264 needs even sizes, not the default multiple of 16 (which would rescale).
      iio.imwrite(path, frames, fps=fps, codec='libx264', macro_block_size=2)
    elif fmt == 'gif':
      iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
      raise ConfigError(f'render.formats has {fmt!r}; use "mp4" and/or "gif".')
    paths.append(path)
  return paths


def render_path(task, params, render_config, out_dir, eval_config, mesh=None):
  """Renders the task's camera path (task.camera_path: render.camera_path's file, or for NeRF the orbit
  of `render_config`) from `params`. Writes under out_dir (process 0) <name>.{mp4,gif}, where the task
  has a depth map <name>_depth.{mp4,gif}, and <name>.json, the path itself (camera_path's format: edit
  it and render it again with render.camera_path). <name> is the path's (camera_path.CameraPath.name).

  eval_config: config.eval (chunk and microbatches of the rendering). Returns the written paths.
  """
  c = render_config
  path = task.camera_path(c)
  name = path.name
  evaluator = evaluate.Evaluator(task, eval_config.chunk, mesh, microbatches=eval_config.microbatches)
  colour, depth = [], []
  progress = Progress(len(path.poses), desc='render', unit='frame', enabled=parallel.is_main_process())
  for i, (pose, intrinsics) in enumerate(zip(path.poses, path.intrinsics)):
    view = task.view_from_pose(f'{name}_{i:03d}', pose, intrinsics, path.height, path.width)
    outputs = evaluator.render(params, view)
    colour.append(evaluate.to_uint8(outputs['rgb']))
    extra = task.extra_images(outputs)
    depth_map = extra.get('depth', extra.get('disparity'))
    if depth_map is not None:
      depth.append(np.repeat(evaluate.to_uint8(depth_map[..., None]), 3, axis=-1))
    progress.update(1)
  progress.close()
  if not parallel.is_main_process():
    return []
  os.makedirs(out_dir, exist_ok=True)
  paths = write_video(os.path.join(out_dir, name), np.stack(colour), path.fps, c.formats)
  if depth:
    paths += write_video(os.path.join(out_dir, f'{name}_depth'), np.stack(depth), path.fps, c.formats)
  return paths + [camera_path.write(os.path.join(out_dir, f'{name}.json'), path)]
