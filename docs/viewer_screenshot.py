"""A screenshot of the viewer's page in headless Chromium, through the DevTools protocol (how the README's
docs/img/viewer_lego.jpg was taken): load it, zoom the 3-D view out with the mouse wheel, wait for the
frames at rest, capture.

  python main.py --config CONFIG --mode view --config.view.exit_after_s=120 &
  python docs/viewer_screenshot.py http://127.0.0.1:7007/ shot.png --wait 25 --zoom_out 4

Needs Debian's chromium (apt-get install chromium) and websockets (a dependency of viser).
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import websockets

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--use-angle=swiftshader', '--enable-unsafe-swiftshader']  # WebGL in software: no GPU needed


async def screenshots(ws_url, url, width, height, zoom_out=0):
  """Loads `url` in the browser tab at `ws_url`, zooms out `zoom_out` wheel steps, then yields a PNG
  (bytes) of the page each time it is asked, half a second apart at least."""
  async with websockets.connect(ws_url, max_size=None) as ws:
    calls = 0

    async def call(method, **params):
      nonlocal calls
      calls += 1
      await ws.send(json.dumps({'id': calls, 'method': method, 'params': params}))
      while True:
        message = json.loads(await ws.recv())
        if message.get('id') == calls:
          return message.get('result')

    await call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1,
               mobile=False)
    await call('Page.navigate', url=url)
    await asyncio.sleep(5)  # the page and its websocket
    for _ in range(zoom_out):
      await call('Input.dispatchMouseEvent', type='mouseWheel', x=width // 3, y=height // 2, deltaX=0,
                 deltaY=120)
      await asyncio.sleep(0.3)
    while True:
      await asyncio.sleep(0.5)
      yield base64.b64decode((await call('Page.captureScreenshot', format='png'))['data'])


class Chromium:
  """Debian's chromium, headless, with its DevTools protocol on `port`; a context manager: (the first
  tab's websocket address)."""

  def __init__(self, width=1000, height=640, port=9333, executable='chromium'):
    self.width, self.height, self.port, self.executable = width, height, port, executable

  def __enter__(self):
    # A profile of its own, removed after; the browser's helpers (renderer, crash handler) may still
    # write to it for a moment after the kill, so a leftover file in /tmp is no error.
    self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
    self._browser = subprocess.Popen(
        [self.executable, *FLAGS, f'--user-data-dir={self._profile.name}',
         f'--window-size={self.width},{self.height}', f'--remote-debugging-port={self.port}', 'about:blank'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
      try:
        with urllib.request.urlopen(f'http://127.0.0.1:{self.port}/json') as r:
          pages = [p for p in json.load(r) if p['type'] == 'page']
        if pages:
          return pages[0]['webSocketDebuggerUrl']
      except OSError:
        pass
      if time.monotonic() > deadline:
        self.__exit__()
        raise RuntimeError(f'{self.executable} did not open its DevTools port {self.port}')
      time.sleep(0.2)

  def __exit__(self, *exc):
    try:  # the whole process group: the helpers too, not only the main process
      os.killpg(self._browser.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    self._browser.wait()
    self._profile.cleanup()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('url')
  parser.add_argument('out')
  parser.add_argument('--wait', type=float, default=30.0, help='seconds after loading, before capturing')
  parser.add_argument('--zoom_out', type=int, default=0, help='mouse-wheel steps out')
  parser.add_argument('--width', type=int, default=1000)
  parser.add_argument('--height', type=int, default=640)
  parser.add_argument('--port', type=int, default=9333, help="Chromium's DevTools port")
  args = parser.parse_args()

  async def capture(ws_url):
    start = time.monotonic()
    pages = screenshots(ws_url, args.url, args.width, args.height, args.zoom_out)
    try:
      async for png in pages:
        if time.monotonic() - start >= args.wait:
          return png
    finally:
      await pages.aclose()

  with Chromium(args.width, args.height, args.port) as ws_url:
    png = asyncio.run(capture(ws_url))
  with open(args.out, 'wb') as f:
    f.write(png)
  print(f'Wrote {args.out}')


if __name__ == '__main__':
  main()
