"""The live viewer: a browser page (viser) showing the training cameras and the scene rendered from
wherever the user drags the camera, while training runs (train.viewer) or from a workdir's latest
checkpoint (--mode view).

Split by job: server.py (the viser server, the browsers coming and going, --mode view's loop; the only
module that imports viser, an optional extra: requirements-viewer.txt), scheduler.py (which frame to
render next, at which size, in chunks, within the training's time share), panels.py (the page: readouts,
training cameras, the camera-path panel) and browser_camera.py (viser's OpenCV cameras and nerf_jax's
OpenGL ones, frame sizes).

One thread renders: the caller's. viser's own threads only record what the browsers ask (a camera
moved, an output chosen, a path saved); `Viewer.poll` renders at most one chunk of one frame per call
with the variables it is handed. Called between training steps, it never holds a step up for longer
than one chunk (view.chunk rays), it keeps its share of the time to 1 - view.train_util, and, since it
only reads the variables, the training's numbers are the same with the viewer as without it.
"""

from nerf_jax.viewer.server import Viewer, check_port, require_viser

__all__ = ['Viewer', 'check_port', 'require_viser']
