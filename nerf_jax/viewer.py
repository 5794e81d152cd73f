"""The live viewer: a browser page (viser) showing the training cameras and the scene rendered from
wherever the user drags the camera, while training runs (train.viewer) or from a workdir's latest
checkpoint (--mode view).

viser is an optional extra (requirements-viewer.txt): only this module imports it.

One thread renders: the caller's. viser's own threads only record what the browsers ask (a camera
moved, an output chosen, a path saved); `Viewer.poll` renders at most one chunk of one frame per call
with the variables it is handed. Called between training steps, it never holds a step up for longer
than one chunk (view.chunk rays), it keeps its share of the time to 1 - view.train_util, and, since it
only reads the variables, the training's numbers are the same with the viewer as without it.

Frames come at a few fixed long sides (view.resolutions: the first while the camera moves, the last at
rest), each in chunks of a fixed size, so nothing compiles after the first frame of each size.
"""

import os
import socket
import threading
import time

import jax
import numpy as np

from nerf_jax import camera, camera_path, evaluate
from nerf_jax.datasets import colmap_model
from nerf_jax.errors import ConfigError

try:
  import viser
except ImportError:  # the optional extra is not installed: said where a viewer is asked for
  viser = None

# viser's cameras follow OpenCV (x right, y down, looking down +z); nerf_jax's follow OpenGL (docs/conventions.md).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def require_viser():
  if viser is None:
    raise ConfigError('the viewer (--mode view, train.viewer) needs viser, an optional extra: '
                      'pip install -r requirements-viewer.txt')


def check_port(host, port):
  """A one-line ConfigError if `port` on `host` is taken (viser would quietly move to the next one)."""
  with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does: TIME_WAIT is free
    try:
      s.bind((host, port))
    except OSError as e:
      raise ConfigError(f'the viewer cannot listen on {host}:{port} ({e.strerror}): another program (or '
                        f'viewer) holds the port; pass --config.view.port=<another port>.') from None


def opengl_pose(wxyz, position):
  """Camera-to-world float64 [4, 4] in OpenGL axes, of a viser camera (OpenCV axes) at `position`
  float [3] rotated by the unit quaternion `wxyz` float [4]."""
  pose = np.eye(4)
  pose[:3, :3] = colmap_model.qvec_to_rotmat(wxyz)  # viser's wxyz: a Hamilton quaternion, as COLMAP's
  pose[:3, 3] = position
  return pose @ _FLIP_YZ


def viser_pose(pose):
  """(wxyz float [4], position float [3]) of an OpenGL camera-to-world pose float [4, 4] (opengl_pose's
  inverse)."""
  pose = np.asarray(pose, np.float64) @ _FLIP_YZ
  return colmap_model.rotmat_to_qvec(pose[:3, :3]), pose[:3, 3]


def frame_size(long_side, aspect):
  """(height, width) of a frame whose longer side is `long_side` px, width / height ~ `aspect`."""
  if aspect >= 1.0:
    return max(1, round(long_side / aspect)), long_side
  return long_side, max(1, round(long_side * aspect))


def intrinsics_for(fov, height, width):
  """(fx, fy, cx, cy) float32 [4] of a centred camera with vertical field of view `fov` (radians)."""
  return camera.centred_intrinsics(0.5 * height / np.tan(0.5 * fov), height, width)


def letterbox(image, aspect):
  """image uint8 [H, W, 3] centred on white to width / height = aspect (the browser stretches a
  background image over its whole canvas): uint8 [H', W', 3]."""
  height, width = image.shape[:2]
  if width / height < aspect:
    pad = int(round(height * aspect)) - width
    return np.pad(image, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=255)
  pad = int(round(width / aspect)) - height
  return np.pad(image, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=255)


class _Client:
  """What one browser asked for, and how far its render has got (guarded by Viewer._lock)."""

  def __init__(self, handle):
    self.handle = handle
    self.camera = None  # (pose [4, 4] OpenGL, vertical fov, width / height) of the browser's view
    self.moved_at = 0.0
    self.level = 0  # index into view.resolutions of the next frame to render
    self.job = None  # the frame being rendered (Viewer._start_job's dict)
    self.rendered_step = None  # the step the last full-resolution frame showed
    self.rendered_at = 0.0
    self.keyframes = []  # the camera-path panel's poses (OpenGL, [4, 4]) and fovs


class Viewer:
  """Serves `task` in the browser on view.host:view.port (view: config.view).

  workdir: where the camera-path panel writes its paths (<workdir>/camera_paths/);
  render_config: config.render (the path's frame count and fps); training: whether poll is called
  between training steps (the time-share of view.train_util then applies). Close it when done.
  """

  def __init__(self, task, view, workdir, render_config, mesh=None, training=False):
    require_viser()
    self.task, self.view, self.training = task, view, training
    self.paths_dir = os.path.join(os.path.abspath(workdir), 'camera_paths')
    self.render_config = render_config
    self.resolutions = tuple(int(r) for r in view.resolutions)
    self._evaluators = {}
    self._mesh = mesh
    self._lock = threading.Lock()
    self._clients = {}
    self._step = None
    self._output = 'rgb'
    self._render_seconds = 0.0
    self._train_seconds = 0.0
    self._last_poll = time.perf_counter()
    self._stop_at = time.monotonic() + view.exit_after_s if view.exit_after_s > 0 else None
    self.closed = False
    check_port(view.host, view.port)
    self.server = viser.ViserServer(host=view.host, port=view.port, verbose=False)
    if self.server.get_port() != view.port:  # taken between the check and the server's start
      self.server.stop()
      check_port(view.host, view.port)
    self.url = f'http://{view.host}:{view.port}'
    self._build_page()
    self.server.on_client_connect(self._connect)
    self.server.on_client_disconnect(self._disconnect)

  # --- what the page shows ---

  def _build_page(self):
    gui = self.server.gui
    self._gui_step = gui.add_text('Step', '-', disabled=True)
    self._gui_loss = gui.add_text('Loss / PSNR', '-', disabled=True)
    self._gui_render = gui.add_text('Render', '-', disabled=True)
    self._gui_output = gui.add_dropdown('Output', ('rgb',) + self._extra_names(), initial_value='rgb')

    @self._gui_output.on_update
    def _(_):
      self._output = self._gui_output.value
      with self._lock:
        for client in self._clients.values():
          client.level, client.job = 0, None

    if not self.task.has_cameras:
      return
    scene = self.task.scene
    up = np.mean(scene.poses[:, :3, 1], axis=0)  # the cameras' mean up (OpenGL +Y)
    self.server.scene.set_up_direction(up / np.linalg.norm(up))
    centre, _ = camera.look_at_centre(scene.poses)  # where the cameras look (inward) or a point before them
    extent = float(np.median(np.linalg.norm(scene.poses[:, :3, 3] - centre, axis=-1))) or 1.0
    picked = np.unique(np.linspace(0, len(scene.poses) - 1, min(len(scene.poses), self.view.max_cameras)
                                   ).round().astype(int))
    stride = max(1, max(scene.height, scene.width) // self.view.thumbnail)
    frustums = []
    for i in picked:
      fy = float(scene.intrinsics[i, 1])
      wxyz, position = viser_pose(scene.poses[i])
      frustum = self.server.scene.add_camera_frustum(
          f'/cameras/{i:04d}', fov=2 * np.arctan(0.5 * scene.height / fy), aspect=scene.width / scene.height,
          scale=0.03 * extent, thickness=0.003 * extent, image=evaluate.to_uint8(scene.images[i, ::stride, ::stride]),
          wxyz=wxyz, position=position, visible=bool(self.view.cameras))
      frustums.append(frustum)
      frustum.on_click(self._jump_to(wxyz, position, 2 * np.arctan(0.5 * scene.height / fy)))
    shown = self.server.gui.add_checkbox('Training cameras', bool(self.view.cameras))

    @shown.on_update
    def _(_):
      for frustum in frustums:
        frustum.visible = shown.value

    try:
      lo, hi = (np.asarray(b, np.float64) for b in self.task.scene_box())
      self.server.scene.add_box('/scene_box', color=(255, 140, 0), dimensions=tuple(hi - lo), wireframe=True,
                                position=tuple(0.5 * (lo + hi)))
    except ConfigError:  # an NDC scene has no box in the world
      pass
    # The browser starts where the first training camera is, looking where it looks, seeing what it saw.
    first = np.asarray(scene.poses[picked[0]], np.float64)
    self.server.initial_camera.fov = float(2 * np.arctan(0.5 * scene.height / scene.intrinsics[picked[0], 1]))
    self.server.initial_camera.position = tuple(first[:3, 3])
    self.server.initial_camera.look_at = tuple(first[:3, 3] - first[:3, 2] * extent)
    self.server.initial_camera.up = tuple(up / np.linalg.norm(up))
    self._build_path_panel()

  def _build_path_panel(self):
    gui = self.server.gui
    with gui.add_folder('Camera path'):
      add = gui.add_button('Add keyframe (this view)')
      clear = gui.add_button('Clear keyframes')
      count = gui.add_text('Keyframes', '0', disabled=True)
      frames = gui.add_number('Frames', int(self.render_config.frames), min=1, step=1)
      fps = gui.add_number('FPS', float(self.render_config.fps), min=1.0)
      name = gui.add_text('Name', 'viewer_path')
      save = gui.add_button('Save path')
      saved = gui.add_text('Saved to', '-', disabled=True)

    @add.on_click
    def _(event):
      with self._lock:
        client = self._clients.get(event.client_id)
        if client is None or client.camera is None:
          return
        pose, fov, _ = client.camera
        client.keyframes.append((pose, fov))
        count.value = str(len(client.keyframes))
      wxyz, position = viser_pose(pose)
      event.client.scene.add_camera_frustum(
          f'/path/{len(client.keyframes):03d}', fov=fov, aspect=self.task.scene.width / self.task.scene.height,
          scale=0.05, color=(220, 40, 40), wxyz=wxyz, position=position)

    @clear.on_click
    def _(event):
      with self._lock:
        client = self._clients.get(event.client_id)
        if client is not None:
          for k in range(1, len(client.keyframes) + 1):
            event.client.scene.remove_by_name(f'/path/{k:03d}')
          client.keyframes = []
      count.value = '0'

    @save.on_click
    def _(event):
      with self._lock:
        client = self._clients.get(event.client_id)
        keyframes = list(client.keyframes) if client is not None else []
      if not keyframes:
        saved.value = 'add a keyframe first'
        return
      saved.value = self.save_path(keyframes, int(frames.value), float(fps.value), name.value)

  def save_path(self, keyframes, num_frames, fps, name):
    """Writes the camera path through `keyframes` ([(pose [4, 4] OpenGL, vertical fov)]) as
    <workdir>/camera_paths/<name>.json (camera_path's format, the training images' size), for
    --mode render --config.render.camera_path=<that file>. Returns the file's path."""
    scene = self.task.scene
    stem = ''.join(c if c.isalnum() or c in '-_' else '_' for c in name) or 'viewer_path'
    poses = camera_path.interpolate(np.stack([k[0] for k in keyframes]), num_frames)
    fovs = np.interp(np.linspace(0, len(keyframes) - 1, num_frames), np.arange(len(keyframes)),
                     [k[1] for k in keyframes])
    intrinsics = np.stack([intrinsics_for(f, scene.height, scene.width) for f in fovs])
    path = camera_path.CameraPath(poses, intrinsics, scene.height, scene.width, fps, name=stem)
    return camera_path.write(os.path.join(self.paths_dir, f'{stem}.json'), path)

  def _extra_names(self):
    """The task's extra maps (depth, opacity, ...), named from one made-up pixel's outputs."""
    if not self.task.has_cameras:
      return ()
    dummy = {'rgb': np.zeros((1, 1, 3)), 'acc': np.ones((1, 1)), 'depth': np.ones((1, 1))}
    return tuple(self.task.extra_images(dummy))

  def _jump_to(self, wxyz, position, fov):
    def jump(event):
      with event.client.atomic():
        event.client.camera.wxyz = wxyz
        event.client.camera.position = position
        event.client.camera.fov = fov
    return jump

  # --- browsers coming and going (viser's threads) ---

  def _connect(self, handle):
    client = _Client(handle)

    @handle.camera.on_update
    def _(cam):
      aspect = cam.image_width / cam.image_height if cam.image_height > 0 else 1.0
      with self._lock:
        client.camera = (opengl_pose(cam.wxyz, cam.position), float(cam.fov), aspect)
        client.moved_at = time.monotonic()
        client.level, client.job = 0, None

    with self._lock:
      self._clients[handle.client_id] = client
      cam = handle.camera
      if cam._state.update_timestamp:  # its first camera message came before this callback
        aspect = cam.image_width / cam.image_height if cam.image_height > 0 else 1.0
        client.camera = (opengl_pose(cam.wxyz, cam.position), float(cam.fov), aspect)

  def _disconnect(self, handle):
    with self._lock:
      self._clients.pop(handle.client_id, None)  # a frame half-rendered for it is dropped

  # --- rendering (the caller's thread) ---

  def set_stats(self, step, metrics=None):
    """The step (and its fetched metrics: 'loss', 'psnr') the page shows."""
    self._step = int(step)
    self._gui_step.value = str(self._step)
    if metrics:
      self._gui_loss.value = f'{metrics.get("loss", float("nan")):.4g} / {metrics.get("psnr", float("nan")):.2f} dB'

  def poll(self, variables, step=None):
    """Renders one chunk of one browser's frame from `variables` if one is wanted and, while training,
    the time-share allows; sends the frame when its last chunk is done. Returns whether it rendered."""
    now = time.perf_counter()
    if self.training:
      self._train_seconds += now - self._last_poll
      self._last_poll = now
    if self.closed:
      return False
    if self._stop_at is not None and time.monotonic() >= self._stop_at:
      self.close()
      return False
    if step is not None:
      self._step = int(step)  # what a frame shows; the page's readout follows set_stats (log steps)
    if self.training:
      share = 1.0 - self.view.train_util
      if self._render_seconds > share / self.view.train_util * self._train_seconds:
        return False
    client, job = self._next_client()
    if client is None:
      return False
    jax.block_until_ready(variables)  # the step in flight is training time, not the viewer's
    start = time.perf_counter()
    if self.training:
      self._train_seconds += start - now
    self._render_chunk(client, job, variables)
    self._render_seconds += time.perf_counter() - start
    self._last_poll = time.perf_counter()
    return True

  def _next_client(self):
    """(client, its frame job), or (None, None): the browser with the most urgent frame (one being
    rendered, then the oldest request), a frame at the next resolution after a move, at rest the
    highest, and again when training moved on. (The browser may move again meanwhile, replacing its
    job: the one returned is then finished and dropped.)"""
    now = time.monotonic()
    with self._lock:
      best = None
      for client in self._clients.values():
        if client.job is not None:
          return client, client.job
        if client.camera is None and self.task.has_cameras:
          continue
        wanted = client.level < len(self.resolutions) and (
            client.level == 0 or now - client.moved_at >= self.view.rest_s)
        stale = (client.level == len(self.resolutions) and client.rendered_step != self._step
                 and now - client.rendered_at >= self.view.refresh_s)
        if wanted or stale:
          if stale:
            client.level = len(self.resolutions) - 1
          if best is None or client.moved_at < best.moved_at:
            best = client
      if best is None:
        return None, None
      best.job = self._start_job(best)
      return best, best.job

  def _start_job(self, client):
    """A frame for `client` at its next resolution (called under the lock)."""
    long_side = self.resolutions[client.level]
    if self.task.has_cameras:
      pose, fov, aspect = client.camera
      height, width = frame_size(long_side, aspect)
      view = self.task.view_from_pose('viewer', pose.astype(np.float32), intrinsics_for(fov, height, width),
                                      height, width)
    else:  # image fitting: its one image, whatever the camera
      view = next(self.task.eval_views(self.task.train_split, (0, 1, 1)))
      client.level = len(self.resolutions) - 1
      aspect = client.camera[2] if client.camera is not None else 1.0
    chunk = min(self.view.chunk, long_side * long_side)
    return {'view': view, 'level': client.level, 'outputs': [], 'start': 0, 'chunk': chunk,
            'aspect': aspect, 'step': self._step, 'began': time.perf_counter()}

  def _evaluator(self, chunk):
    if chunk not in self._evaluators:
      self._evaluators[chunk] = evaluate.Evaluator(self.task, chunk, self._mesh)
    return self._evaluators[chunk]

  def _render_chunk(self, client, job, variables):
    view = job['view']
    rows = jax.tree_util.tree_leaves(view.inputs)[0].shape[0]
    job['outputs'].append(self._evaluator(job['chunk']).predict_chunk(variables, view.inputs, job['start']))
    job['start'] += job['chunk']
    if job['start'] < rows:
      return
    height, width = view.target.shape[:2]
    outputs = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *job['outputs'])
    outputs = {k: v.reshape(height, width, *v.shape[1:]) for k, v in outputs.items()}
    frame = self._frame(view, outputs, job['aspect'])
    seconds = time.perf_counter() - job['began']
    with self._lock:
      if client.job is not job:  # the camera moved (or the browser left) while it rendered
        return
      client.job = None
      client.level = job['level'] + 1
      if client.level == len(self.resolutions):
        client.rendered_step, client.rendered_at = job['step'], time.monotonic()
      if client.handle.client_id not in self._clients:
        return
    client.handle.scene.set_background_image(frame, format='jpeg', jpeg_quality=self.view.jpeg_quality)
    self._gui_render.value = f'{width}x{height} in {seconds * 1e3:.0f} ms'

  def _frame(self, view, outputs, aspect):
    """The image a browser is sent: the chosen output (rgb, or an extra map in grey); for a task
    without cameras, its image and the fit side by side, letterboxed to the browser's shape."""
    if self._output == 'rgb':
      image = evaluate.to_uint8(outputs['rgb'])
    else:
      extra = self.task.extra_images(outputs).get(self._output)
      image = evaluate.to_uint8(outputs['rgb']) if extra is None else np.repeat(
          evaluate.to_uint8(extra[..., None]), 3, axis=-1)
    if not self.task.has_cameras:
      image = letterbox(np.concatenate([evaluate.to_uint8(view.target), image], axis=1), aspect)
    return image

  def serve(self, load_variables):
    """--mode view: renders from load_variables() (-> (variables, step)), asked again every
    view.reload_s for a newer checkpoint, until view.exit_after_s or Ctrl+C."""
    variables, step = load_variables()
    self.set_stats(step)
    checked = time.monotonic()
    try:
      while not self.closed:
        if not self.poll(variables, step):
          time.sleep(0.01)
        if time.monotonic() - checked >= self.view.reload_s:
          variables, step = load_variables()
          self.set_stats(step)
          checked = time.monotonic()
    except KeyboardInterrupt:
      pass
    finally:
      self.close()

  def close(self):
    if not self.closed:
      self.closed = True
      self.server.stop()
