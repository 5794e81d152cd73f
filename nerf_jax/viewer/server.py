"""Viewer: the viser server, the browsers coming and going, and the loop that serves a checkpoint.

viser is an optional extra (requirements-viewer.txt): only this module imports it.
"""

import os
import socket
import time

from nerf_jax.errors import ConfigError
from nerf_jax.viewer.panels import add_path_panel, add_readouts, add_training_cameras, save_path
from nerf_jax.viewer.browser_camera import opengl_pose
from nerf_jax.viewer.scheduler import FrameScheduler

try:
  import viser
except ImportError:  # the optional extra is not installed: said where a viewer is asked for
  viser = None


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


def _browser_camera(cam):
  """(pose [4, 4] OpenGL, vertical fov, width / height) of a viser client's camera."""
  aspect = cam.image_width / cam.image_height if cam.image_height > 0 else 1.0
  return opengl_pose(cam.wxyz, cam.position), float(cam.fov), aspect


class Viewer:
  """Serves `task` in the browser on view.host:view.port (view: config.view).

  workdir: where the camera-path panel writes its paths (<workdir>/camera_paths/);
  render_config: config.render (the path's frame count and fps); training: whether poll is called
  between training steps (the time-share of view.train_util then applies). Close it when done.
  """

  def __init__(self, task, view, workdir, render_config, mesh=None, training=False):
    require_viser()
    self.task, self.view = task, view
    self.paths_dir = os.path.join(os.path.abspath(workdir), 'camera_paths')
    self.scheduler = FrameScheduler(task, view, mesh, training)
    self._stop_at = time.monotonic() + view.exit_after_s if view.exit_after_s > 0 else None
    self.closed = False
    check_port(view.host, view.port)
    self.server = viser.ViserServer(host=view.host, port=view.port, verbose=False)
    if self.server.get_port() != view.port:  # taken between the check and the server's start
      self.server.stop()
      check_port(view.host, view.port)
    self.url = f'http://{view.host}:{view.port}'
    self._readouts = add_readouts(self.server, self.scheduler)
    if task.has_cameras:
      add_training_cameras(self.server, task, view)
      add_path_panel(self.server, self.scheduler, render_config, self.paths_dir)
    self.server.on_client_connect(self._connect)
    self.server.on_client_disconnect(self.scheduler.remove)

  def save_path(self, keyframes, num_frames, fps, name):
    """panels.save_path into <workdir>/camera_paths/."""
    return save_path(self.task.scene, self.paths_dir, keyframes, num_frames, fps, name)

  def _connect(self, handle):  # viser's thread
    client = self.scheduler.add(handle)

    @handle.camera.on_update
    def _(cam):
      self.scheduler.camera_moved(client, _browser_camera(cam))

    if handle.camera._state.update_timestamp:  # its first camera message came before this callback
      with self.scheduler.lock:
        client.camera = _browser_camera(handle.camera)

  def set_stats(self, step, metrics=None):
    """The step (and its fetched metrics: 'loss', 'psnr') the page shows."""
    self.scheduler.step = int(step)
    self._readouts['step'].value = str(self.scheduler.step)
    if metrics:
      self._readouts['loss'].value = (f'{metrics.get("loss", float("nan")):.4g} / '
                                      f'{metrics.get("psnr", float("nan")):.2f} dB')

  def poll(self, variables, step=None):
    """Renders one chunk of one browser's frame from `variables` if one is wanted and, while training,
    the time-share allows; sends the frame when its last chunk is done. Returns whether it rendered."""
    allowed = self.scheduler.allows_rendering()
    if self.closed:
      return False
    if self._stop_at is not None and time.monotonic() >= self._stop_at:
      self.close()
      return False
    if step is not None:
      self.scheduler.step = int(step)  # what a frame shows; the page's readout follows set_stats (log steps)
    if not allowed:
      return False
    done = self.scheduler.render_one_chunk(variables)
    if done:
      client, frame, milliseconds, (width, height) = done
      client.handle.scene.set_background_image(frame, format='jpeg', jpeg_quality=self.view.jpeg_quality)
      self._readouts['render'].value = f'{width}x{height} in {milliseconds:.0f} ms'
    return done is not None

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
