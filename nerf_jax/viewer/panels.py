"""The page's panels: the readouts and the output choice, the training cameras and the scene box, and
the camera-path panel, each built on a viser server and wired to the FrameScheduler."""

import os

import numpy as np

from nerf_jax import evaluate
from nerf_jax.cameras import camera_path, pinhole
from nerf_jax.errors import ConfigError
from nerf_jax.viewer.browser_camera import intrinsics_for, viser_pose


def output_names(task):
  """'rgb' and the task's extra maps (depth, opacity, ...), named from one made-up pixel's outputs."""
  if not task.has_cameras:
    return ('rgb',)
  dummy = {'rgb': np.zeros((1, 1, 3)), 'acc': np.ones((1, 1)), 'depth': np.ones((1, 1))}
  return ('rgb',) + tuple(task.extra_images(dummy))


def add_readouts(server, scheduler):
  """The step, loss / PSNR and last frame's time readouts, and the Output dropdown. Returns the readouts
  {'step', 'loss', 'render'} (viser text handles)."""
  gui = server.gui
  readouts = {'step': gui.add_text('Step', '-', disabled=True),
              'loss': gui.add_text('Loss / PSNR', '-', disabled=True),
              'render': gui.add_text('Render', '-', disabled=True)}
  output = gui.add_dropdown('Output', output_names(scheduler.task), initial_value='rgb')

  @output.on_update
  def _(_):
    scheduler.show(output.value)

  return readouts


def add_training_cameras(server, task, view):
  """The training cameras as frustums with their images (click one to fly there; a checkbox hides them),
  the scene box, and the browser's first camera: the first training camera's."""
  scene = task.scene
  up = np.mean(scene.poses[:, :3, 1], axis=0)  # the cameras' mean up (OpenGL +Y)
  server.scene.set_up_direction(up / np.linalg.norm(up))
  centre, _ = pinhole.look_at_centre(scene.poses)  # where the cameras look (inward) or a point before them
  extent = float(np.median(np.linalg.norm(scene.poses[:, :3, 3] - centre, axis=-1))) or 1.0
  picked = np.unique(np.linspace(0, len(scene.poses) - 1, min(len(scene.poses), view.max_cameras)
                                 ).round().astype(int))
  stride = max(1, max(scene.height, scene.width) // view.thumbnail)
  frustums = []
  for i in picked:
    fov = 2 * np.arctan(0.5 * scene.height / float(scene.intrinsics[i, 1]))
    wxyz, position = viser_pose(scene.poses[i])
    frustum = server.scene.add_camera_frustum(
        f'/cameras/{i:04d}', fov=fov, aspect=scene.width / scene.height, scale=0.03 * extent,
        thickness=0.003 * extent, image=evaluate.to_uint8(scene.images[i, ::stride, ::stride]),
        wxyz=wxyz, position=position, visible=bool(view.cameras))
    frustums.append(frustum)
    frustum.on_click(_jump_to(wxyz, position, fov))
  shown = server.gui.add_checkbox('Training cameras', bool(view.cameras))

  @shown.on_update
  def _(_):
    for frustum in frustums:
      frustum.visible = shown.value

  try:
    lo, hi = (np.asarray(b, np.float64) for b in task.scene_box())
    server.scene.add_box('/scene_box', color=(255, 140, 0), dimensions=tuple(hi - lo), wireframe=True,
                         position=tuple(0.5 * (lo + hi)))
  except ConfigError:  # an NDC scene has no box in the world
    pass
  # The browser starts where the first training camera is, looking where it looks, seeing what it saw.
  first = np.asarray(scene.poses[picked[0]], np.float64)
  server.initial_camera.fov = float(2 * np.arctan(0.5 * scene.height / scene.intrinsics[picked[0], 1]))
  server.initial_camera.position = tuple(first[:3, 3])
  server.initial_camera.look_at = tuple(first[:3, 3] - first[:3, 2] * extent)
  server.initial_camera.up = tuple(up / np.linalg.norm(up))


def _jump_to(wxyz, position, fov):
  def jump(event):
    with event.client.atomic():
      event.client.camera.wxyz = wxyz
      event.client.camera.position = position
      event.client.camera.fov = fov
  return jump


def add_path_panel(server, scheduler, render_config, paths_dir):
  """"Camera path": keyframes from each browser's view, saved as a camera path (save_path)."""
  gui, task = server.gui, scheduler.task
  with gui.add_folder('Camera path'):
    add = gui.add_button('Add keyframe (this view)')
    clear = gui.add_button('Clear keyframes')
    count = gui.add_text('Keyframes', '0', disabled=True)
    frames = gui.add_number('Frames', int(render_config.frames), min=1, step=1)
    fps = gui.add_number('FPS', float(render_config.fps), min=1.0)
    name = gui.add_text('Name', 'viewer_path')
    save = gui.add_button('Save path')
    saved = gui.add_text('Saved to', '-', disabled=True)

  @add.on_click
  def _(event):
    with scheduler.lock:
      client = scheduler.clients.get(event.client_id)
      if client is None or client.camera is None:
        return
      pose, fov, _ = client.camera
      client.keyframes.append((pose, fov))
      count.value = str(len(client.keyframes))
    wxyz, position = viser_pose(pose)
    event.client.scene.add_camera_frustum(
        f'/path/{len(client.keyframes):03d}', fov=fov, aspect=task.scene.width / task.scene.height,
        scale=0.05, color=(220, 40, 40), wxyz=wxyz, position=position)

  @clear.on_click
  def _(event):
    with scheduler.lock:
      client = scheduler.clients.get(event.client_id)
      if client is not None:
        for k in range(1, len(client.keyframes) + 1):
          event.client.scene.remove_by_name(f'/path/{k:03d}')
        client.keyframes = []
    count.value = '0'

  @save.on_click
  def _(event):
    with scheduler.lock:
      client = scheduler.clients.get(event.client_id)
      keyframes = list(client.keyframes) if client is not None else []
    if not keyframes:
      saved.value = 'add a keyframe first'
      return
    saved.value = save_path(task.scene, paths_dir, keyframes, int(frames.value), float(fps.value), name.value)


def save_path(scene, paths_dir, keyframes, num_frames, fps, name):
  """Writes the camera path through `keyframes` ([(pose [4, 4] OpenGL, vertical fov)]) as
  <paths_dir>/<name>.json (camera_path's format, the training images' size), for
  --mode render --config.render.camera_path=<that file>. Returns the file's path."""
  stem = ''.join(c if c.isalnum() or c in '-_' else '_' for c in name) or 'viewer_path'
  poses = camera_path.interpolate(np.stack([k[0] for k in keyframes]), num_frames)
  fovs = np.interp(np.linspace(0, len(keyframes) - 1, num_frames), np.arange(len(keyframes)),
                   [k[1] for k in keyframes])
  intrinsics = np.stack([intrinsics_for(f, scene.height, scene.width) for f in fovs])
  path = camera_path.CameraPath(poses, intrinsics, scene.height, scene.width, fps, name=stem)
  return camera_path.write(os.path.join(paths_dir, f'{stem}.json'), path)
