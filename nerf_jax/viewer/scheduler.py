"""Which browser's frame to render next, at which size, and in how many chunks (no viser here).

One thread renders: the caller's. viser's threads only record what the browsers ask (a camera moved,
an output chosen), under the scheduler's lock. `FrameScheduler.render_one_chunk` renders at most one
chunk of one frame per call; frames come at a few fixed long sides (view.resolutions: the first while
the camera moves, the last at rest), each in chunks of a fixed size, so nothing compiles after the first
frame of each size. While training, `allows_rendering` keeps the viewer's share of the time to
1 - view.train_util.
"""

import threading
import time

import jax
import numpy as np

from nerf_jax import evaluate
from nerf_jax.viewer.browser_camera import frame_size, intrinsics_for, letterbox


class Client:
  """What one browser asked for, and how far its render has got (guarded by FrameScheduler.lock)."""

  def __init__(self, handle):
    self.handle = handle
    self.camera = None  # (pose [4, 4] OpenGL, vertical fov, width / height) of the browser's view
    self.moved_at = 0.0
    self.level = 0  # index into view.resolutions of the next frame to render
    self.job = None  # the frame being rendered (FrameScheduler._start_job's dict)
    self.rendered_step = None  # the step the last full-resolution frame showed
    self.rendered_at = 0.0
    self.keyframes = []  # the camera-path panel's poses (OpenGL, [4, 4]) and fovs


class FrameScheduler:
  """The browsers' frames of `task` (view: config.view; training: whether the time-share applies)."""

  def __init__(self, task, view, mesh=None, training=False):
    self.task, self.view, self.training = task, view, training
    self.resolutions = tuple(int(r) for r in view.resolutions)
    self.lock = threading.Lock()
    self.clients = {}  # viser client id -> Client
    self.step = None  # the step a frame shows
    self.output = 'rgb'
    self._evaluators = {}
    self._mesh = mesh
    self._render_seconds = 0.0
    self._train_seconds = 0.0
    self._last_poll = time.perf_counter()

  # --- what the browsers ask (viser's threads) ---

  def add(self, handle):
    with self.lock:
      client = self.clients[handle.client_id] = Client(handle)
    return client

  def remove(self, handle):
    with self.lock:
      self.clients.pop(handle.client_id, None)  # a frame half-rendered for it is dropped

  def camera_moved(self, client, camera):
    """client's browser now looks through camera ((pose, fov, aspect)): its frames start again."""
    with self.lock:
      client.camera = camera
      client.moved_at = time.monotonic()
      client.level, client.job = 0, None

  def show(self, output):
    """Every browser now sees `output` ('rgb' or an extra map's name), from the smallest size."""
    self.output = output
    with self.lock:
      for client in self.clients.values():
        client.level, client.job = 0, None

  # --- rendering (the caller's thread) ---

  def allows_rendering(self):
    """Whether a chunk may be rendered now: always, but while training only while the viewer's share of
    the time stays under 1 - view.train_util. Counts the time since the last call as training's."""
    if not self.training:
      return True
    now = time.perf_counter()
    self._train_seconds += now - self._last_poll
    self._last_poll = now
    share = 1.0 - self.view.train_util
    return self._render_seconds <= share / self.view.train_util * self._train_seconds

  def render_one_chunk(self, variables):
    """Renders one chunk of the most urgent frame, if a frame is wanted. Returns None (nothing to
    render), () (a chunk rendered, the frame not done, or its browser moved or left meanwhile), or
    (client, frame uint8 [H, W, 3], milliseconds, (width, height)) when a frame is done."""
    client, job = self._next_client()
    if client is None:
      return None
    now = time.perf_counter()
    jax.block_until_ready(variables)  # the step in flight is training time, not the viewer's
    start = time.perf_counter()
    if self.training:
      self._train_seconds += start - now
    done = self._render_chunk(client, job, variables)
    self._render_seconds += time.perf_counter() - start
    self._last_poll = time.perf_counter()
    return done or ()

  def _next_client(self):
    """(client, its frame job), or (None, None): the browser with the most urgent frame (one being
    rendered, then the oldest request), a frame at the next resolution after a move, at rest the
    highest, and again when training moved on. (The browser may move again meanwhile, replacing its
    job: the one returned is then finished and dropped.)"""
    now = time.monotonic()
    with self.lock:
      best = None
      for client in self.clients.values():
        if client.job is not None:
          return client, client.job
        if client.camera is None and self.task.has_cameras:
          continue
        wanted = client.level < len(self.resolutions) and (
            client.level == 0 or now - client.moved_at >= self.view.rest_s)
        stale = (client.level == len(self.resolutions) and client.rendered_step != self.step
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
            'aspect': aspect, 'step': self.step, 'began': time.perf_counter()}

  def _evaluator(self, chunk):
    if chunk not in self._evaluators:
      self._evaluators[chunk] = evaluate.Evaluator(self.task, chunk, self._mesh)
    return self._evaluators[chunk]

  def _render_chunk(self, client, job, variables):
    """One chunk of job; at its last, (client, frame, milliseconds, (width, height)) if the client still
    wants it, else None."""
    view = job['view']
    rows = jax.tree_util.tree_leaves(view.inputs)[0].shape[0]
    job['outputs'].append(self._evaluator(job['chunk']).predict_chunk(variables, view.inputs, job['start']))
    job['start'] += job['chunk']
    if job['start'] < rows:
      return None
    height, width = view.target.shape[:2]
    outputs = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *job['outputs'])
    outputs = {k: v.reshape(height, width, *v.shape[1:]) for k, v in outputs.items()}
    frame = self._frame(view, outputs, job['aspect'])
    seconds = time.perf_counter() - job['began']
    with self.lock:
      if client.job is not job:  # the camera moved (or the browser left) while it rendered
        return None
      client.job = None
      client.level = job['level'] + 1
      if client.level == len(self.resolutions):
        client.rendered_step, client.rendered_at = job['step'], time.monotonic()
      if client.handle.client_id not in self.clients:
        return None
    return client, frame, seconds * 1e3, (width, height)

  def _frame(self, view, outputs, aspect):
    """The image a browser is sent: the chosen output (rgb, or an extra map in grey); for a task
    without cameras, its image and the fit side by side, letterboxed to the browser's shape."""
    if self.output == 'rgb':
      image = evaluate.to_uint8(outputs['rgb'])
    else:
      extra = self.task.extra_images(outputs).get(self.output)
      image = evaluate.to_uint8(outputs['rgb']) if extra is None else np.repeat(
          evaluate.to_uint8(extra[..., None]), 3, axis=-1)
    if not self.task.has_cameras:
      image = letterbox(np.concatenate([evaluate.to_uint8(view.target), image], axis=1), aspect)
    return image
