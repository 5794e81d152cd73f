"""The browser viewer (nerf_jax.viewer, optional extra requirements-viewer.txt): its cameras' conventions,
frames received by a client speaking viser's own protocol, training unchanged with ten clients and one
that leaves mid-frame, a taken port, camera paths, and a real headless Chromium loading the page of
`python main.py --mode view`."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import jax
import numpy as np
import pytest

from tests.conftest import REPO, override, small_fit_config, small_nerf_config

viser = pytest.importorskip('viser', reason='the viewer extra is not installed: pip install -r '
                            'requirements-viewer.txt (CI installs it)')
import imageio.v3 as iio  # noqa: E402
import msgspec  # noqa: E402  (viser's own dependencies: its wire format)
import websockets  # noqa: E402
import zstandard  # noqa: E402
from viser import _messages, transforms  # noqa: E402

from nerf_jax import evaluate, tasks, train, viewer  # noqa: E402
from nerf_jax.cameras import camera_path  # noqa: E402
from nerf_jax.viewer import browser_camera  # noqa: E402
from nerf_jax.errors import ConfigError  # noqa: E402
from docs import viewer_screenshot  # noqa: E402


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def view_config(config, **values):
  return override(config, **{'view.port': free_port(), **{f'view.{k}': v for k, v in values.items()}})


# --- a client speaking viser's protocol (what the browser's page sends and receives) ---

def camera_message(pose, fov=0.7, height=300, width=400):
  wxyz, position = browser_camera.viser_pose(pose)
  forward = -np.asarray(pose)[:3, 2]
  return _messages.ViewerCameraMessage(
      wxyz=tuple(wxyz), position=tuple(position), fov=fov, near=0.01, far=100.0, image_height=height,
      image_width=width, look_at=tuple(position + forward), up_direction=tuple(np.asarray(pose)[:3, 1]))


def decode(raw):
  """viser's server-to-client wire format: two lengths, zstd'ed msgpack, raw buffers."""
  inner_size, compressed_size = int.from_bytes(raw[:8], 'little'), int.from_bytes(raw[8:16], 'little')
  inner = zstandard.ZstdDecompressor().decompress(raw[16:16 + compressed_size], max_output_size=inner_size)
  return msgspec.msgpack.decode(inner)['messages']


def run_client(port, message, frames, seconds=60.0, leave_after_camera=False, until=None):
  """Connects (retrying while the server starts), sends a camera, appends each frame received (uint8
  [H, W, 3]) to `frames` until `seconds` pass, `until` frames came or the server closes."""
  async def main():
    deadline = time.monotonic() + seconds
    while True:
      try:
        ws = await websockets.connect(f'ws://127.0.0.1:{port}', max_size=None,
                                      subprotocols=[f'viser-v{viser.__version__}'])
        break
      except OSError:
        if time.monotonic() > deadline:
          return
        await asyncio.sleep(0.2)
    async with ws:
      await ws.send(msgspec.msgpack.encode(message.as_serializable_dict()))
      if leave_after_camera:  # gone while its first frame renders
        return
      while time.monotonic() < deadline and (until is None or len(frames) < until):
        try:
          raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
          return
        for m in decode(raw):
          if m['type'] == 'BackgroundImageMessage' and m['rgb_data']:
            frames.append(iio.imread(m['rgb_data']))
  asyncio.run(main())


@pytest.fixture(scope='module')
def trained(trained_models):
  """(config, workdir) of a small NeRF on the built-in scene, trained 60 steps (the shared store's)."""
  return trained_models.get('nerf_60')


# --- conventions ---

def test_viser_camera_axes_are_opencv_of_the_opengl_pose():
  rng = np.random.default_rng(0)
  rotation = transforms.SO3.exp(rng.normal(size=3)).as_matrix()
  pose = np.eye(4)
  pose[:3, :3], pose[:3, 3] = rotation, rng.normal(size=3)
  wxyz, position = browser_camera.viser_pose(pose)
  r = transforms.SO3(wxyz).as_matrix()
  np.testing.assert_allclose(r[:, 2], -pose[:3, 2], atol=1e-9)  # viser looks down +Z, NeRF down -Z
  np.testing.assert_allclose(r[:, 1], -pose[:3, 1], atol=1e-9)  # viser's +Y is down
  np.testing.assert_allclose(position, pose[:3, 3])
  np.testing.assert_allclose(browser_camera.opengl_pose(wxyz, position), pose, atol=1e-9)


def test_frame_sizes_and_letterbox():
  assert browser_camera.frame_size(128, 4 / 3) == (96, 128)
  assert browser_camera.frame_size(128, 0.5) == (128, 64)
  boxed = browser_camera.letterbox(np.zeros((10, 20, 3), np.uint8), 4.0)
  assert boxed.shape == (10, 40, 3) and boxed[:, :10].min() == 255 and boxed[:, 10:30].max() == 0


def test_camera_path_interpolation():
  a = np.eye(4)
  b = np.eye(4)
  b[:3, :3] = transforms.SO3.from_z_radians(np.pi / 2).as_matrix()
  b[:3, 3] = (2.0, 0.0, 0.0)
  poses = camera_path.interpolate(np.stack([a, b]), 3)
  np.testing.assert_allclose(poses[0], a, atol=1e-6)
  np.testing.assert_allclose(poses[-1], b, atol=1e-6)
  middle = transforms.SO3.from_z_radians(np.pi / 4).as_matrix()  # halfway along the arc, not the chord
  np.testing.assert_allclose(poses[1][:3, :3], middle, atol=1e-6)
  np.testing.assert_allclose(poses[1][:3, 3], (1.0, 0.0, 0.0), atol=1e-6)


# --- serving ---

def test_a_client_receives_the_render_of_its_camera_at_each_size(trained):
  """The frames of a training camera arrive at 48, 96 and 128 px and show what the task renders there."""
  config, workdir = trained
  config = view_config(config, exit_after_s=60.0)
  task = tasks.make_task(config)
  state, _ = train.load_state(config, task, workdir)
  v = viewer.Viewer(task, config.view, workdir, config.render)
  scene = task.scene
  pose = scene.poses[3]
  fov = 2 * np.arctan(0.5 * scene.height / scene.intrinsics[3, 1])
  frames = []
  client = threading.Thread(target=run_client, args=(config.view.port, camera_message(pose, fov, 300, 400),
                                                     frames, 40.0, False, 3))
  client.start()
  server = threading.Thread(target=v.serve, args=(lambda: (state.variables, int(state.step)),))
  server.start()
  client.join()
  v.close()
  server.join(10)
  assert [f.shape for f in frames[:3]] == [(36, 48, 3), (72, 96, 3), (96, 128, 3)]
  # The last frame against the task's own render of that camera (JPEG: a few levels off).
  height, width = 96, 128
  expected = task.view_from_pose('x', pose, browser_camera.intrinsics_for(fov, height, width), height, width)
  outputs = evaluate.Evaluator(task, 2048).render(state.variables, expected)
  difference = np.abs(frames[2].astype(float) - evaluate.to_uint8(outputs['rgb']).astype(float))
  assert difference.mean() < 4.0
  assert frames[2].std() > 10  # the spheres, not a blank frame


def test_image_fitting_shows_its_image_beside_the_fit(spheres_root, tmp_path):
  config = view_config(small_fit_config(spheres_root), exit_after_s=60.0)
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  v = viewer.Viewer(task, config.view, str(tmp_path), config.render)
  frames = []
  client = threading.Thread(target=run_client, args=(config.view.port, camera_message(np.eye(4), 0.7, 300, 400),
                                                     frames, 40.0, False, 1))
  client.start()
  server = threading.Thread(target=v.serve, args=(lambda: (state.variables, 0),))
  server.start()
  client.join()
  v.close()
  server.join(10)
  height, width = task.image.shape[:2]  # the image | the fit, on white to the browser's 4:3
  assert frames and frames[0].shape == (round(2 * width * 3 / 4), 2 * width, 3)
  top = (frames[0].shape[0] - height) // 2
  target = evaluate.to_uint8(task.image).astype(float)
  assert np.abs(frames[0][top:top + height, :width].astype(float) - target).mean() < 6.0


def test_training_is_unchanged_by_ten_clients_and_one_that_leaves(spheres_root, tmp_path):
  config = small_nerf_config(spheres_root, **{'train.steps': 40, 'train.checkpoint_every': 40,
                                              'train.lr_decay_steps': 40, 'train.log_every': 10})
  plain = train.train_and_evaluate(config, str(tmp_path / 'plain'))
  live = view_config(override(config, **{'train.viewer': True}), train_util=0.5)
  scene = tasks.make_task(config).scene
  fov = 2 * np.arctan(0.5 * scene.height / scene.intrinsics[0, 1])
  received = [[] for _ in range(10)]
  clients = [threading.Thread(target=run_client, args=(live.view.port, camera_message(scene.poses[i % 8], fov),
                                                       received[i], 90.0)) for i in range(10)]
  clients.append(threading.Thread(target=run_client, args=(live.view.port, camera_message(scene.poses[0], fov),
                                                           [], 90.0, True)))
  for c in clients:
    c.start()
  watched = train.train_and_evaluate(live, str(tmp_path / 'live'))
  for c in clients:
    c.join()
  assert sum(len(r) for r in received) > 0, 'no client received a frame while training ran'
  same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), jax.device_get(plain.params),
                                jax.device_get(watched.params))
  assert all(jax.tree_util.tree_leaves(same)), 'the viewer changed the trained parameters'


def test_a_taken_port_is_a_one_line_error(trained):
  config, workdir = trained
  config = view_config(config)
  with socket.socket() as s:
    s.bind(('127.0.0.1', config.view.port))
    s.listen()
    with pytest.raises(ConfigError, match=rf'127.0.0.1:{config.view.port}.*--config.view.port'):
      viewer.Viewer(tasks.make_task(config), config.view, workdir, config.render)


def test_the_viewer_stops_by_itself_after_exit_after_s(trained):
  config, workdir = trained
  config = view_config(config, exit_after_s=1.0)
  task = tasks.make_task(config)
  state, _ = train.load_state(config, task, workdir)
  start = time.monotonic()  # view.exit_after_s counts from the viewer's start
  v = viewer.Viewer(task, config.view, workdir, config.render)
  v.serve(lambda: (state.variables, int(state.step)))  # returns once view.exit_after_s has passed
  assert v.closed and 1.0 <= time.monotonic() - start < 30.0


def test_the_path_panel_writes_a_path_render_reads(trained, tmp_path):
  config, workdir = trained
  config = view_config(config)
  task = tasks.make_task(config)
  v = viewer.Viewer(task, config.view, str(tmp_path), config.render)
  try:
    keyframes = [(task.scene.poses[0], 0.7), (task.scene.poses[4], 0.9)]
    path = v.save_path(keyframes, 5, 12.0, 'my path')
  finally:
    v.close()
  assert path == str(tmp_path / 'camera_paths' / 'my_path.json')
  loaded = camera_path.read(path)
  assert loaded.poses.shape == (5, 4, 4) and loaded.fps == 12.0
  assert (loaded.height, loaded.width) == (task.scene.height, task.scene.width)
  np.testing.assert_allclose(loaded.poses[-1], task.scene.poses[4], atol=1e-5)
  np.testing.assert_allclose(loaded.intrinsics[0], browser_camera.intrinsics_for(0.7, loaded.height, loaded.width),
                             rtol=1e-5)


# --- the bar: main.py --mode view, seen by a real browser ---

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.mark.skipif(CHROMIUM is None, reason='no chromium (apt-get install chromium; CI installs it)')
def test_mode_view_in_a_real_headless_chromium(tmp_path):
  """python main.py --mode view answers HTTP, Chromium's screenshot shows the render, and Ctrl+C stops it
  with status 0 (view.exit_after_s, 50 s, only in case it does not)."""
  port = free_port()
  base = [sys.executable, os.path.join(REPO, 'main.py'), '--config', os.path.join(REPO, 'configs', 'demo_fast.py'),
          f'--workdir={tmp_path / "run"}', f'--config.data.root={tmp_path}']
  subprocess.run(base + ['--config.train.steps=100'], check=True, cwd=tmp_path, capture_output=True)
  served = subprocess.Popen(base + ['--mode', 'view', f'--config.view.port={port}',
                                    '--config.view.exit_after_s=50', '--config.view.cameras=False'],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.monotonic() + 60
    while True:
      try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=2) as page:
          assert page.status == 200 and b'<html' in page.read().lower()
        break
      except OSError:
        assert served.poll() is None and time.monotonic() < deadline, served.stdout.read()
        time.sleep(0.5)
    # Screenshots until the render shows (at most 40 s: the first frame compiles, on a loaded machine).
    shot = os.environ.get('NERF_JAX_VIEWER_SHOT', str(tmp_path / 'shot.png'))  # where to keep it

    async def until_rendered(ws_url):
      deadline = time.monotonic() + 40
      pages = viewer_screenshot.screenshots(ws_url, f'http://127.0.0.1:{port}/', 800, 600)
      try:
        async for png in pages:
          image = iio.imread(png)[..., :3].astype(float)
          if shows_a_render(image) or time.monotonic() > deadline:
            return png, image
      finally:
        await pages.aclose()

    with viewer_screenshot.Chromium(800, 600, free_port(), CHROMIUM) as ws_url:
      png, image = asyncio.run(until_rendered(ws_url))
    with open(shot, 'wb') as f:
      f.write(png)
    served.send_signal(signal.SIGINT)
    output = served.communicate(timeout=120)[0]
  finally:
    served.kill()
  assert served.returncode == 0, output
  assert shows_a_render(image), f'the page shows no render after 40 s: {shot}'


def shows_a_render(image):
  """Whether a screenshot (float [600, 800, 3]) of the built-in scene's page shows its render from the
  first training camera (the cameras' frustums, whose images would show the spheres too, are hidden):
  dark pixels where a page without a render (or a loading screen) is white but for the thin lines of
  the scene box. Below viser's notification, left of its panel."""
  return float(np.mean(image[150:, :460].mean(-1) < 150)) > 0.05
