"""Cameras: how a camera makes rays, how its poses are learned, and the paths it flies.

The family's files: pinhole.py (rays from camera-to-world poses and intrinsics fx, fy, cx, cy: the one
place rays are made; pure), base.py (CameraModel), pose_refinement.py ('refine'), camera_path.py (camera
path JSON files: read, write, interpolate through keyframes). Lens distortion is undone when a scene is
loaded (datasets/colmap.py), so every camera here is a pinhole.

Camera models by name (this file's registry): model.camera picks how the training cameras' poses reach
the rays.

Rays are made inside the loss (tasks.scene.SceneTask.batch_rays), from the poses of the batch's
images passed through the camera model, so a model with parameters learns them with the fields. An
entry is
  build(model_config, num_cameras) -> None (the given poses) or a CameraModel called as
  module(poses float32 [B, 4, 4] camera-to-world, camera int32 [B] training-camera index) -> poses [B, 4, 4]
Its parameters are the variable collection 'camera' of the run's state, trained at the model's own
learning rate and warm-up (CameraModel.lr_scale, warmup_steps); its penalty joins the loss and its
report the training metrics and --mode network (CameraModel.penalty, report). Evaluation and rendering
use the given poses: held-out views have no learned correction, and views of the training split are
shown from their given poses too. A new model is a file of its own plus one line below
(docs/extending.md works pose refinement through).

  'fixed'   the given poses, nothing learned
  'refine'  per-view rotation and translation deltas, regularised (pose_refinement.py: nerfacto's SO3xR3)
"""

from nerf_jax.cameras import pose_refinement
from nerf_jax.cameras.base import CameraModel
from nerf_jax.registry import Registry

CAMERA_MODELS = Registry('camera model', 'model.camera')
CAMERA_MODELS.register('fixed', lambda model_config, num_cameras: None)  # the given poses, nothing learned
CAMERA_MODELS.register('refine', pose_refinement.build, keys=pose_refinement.KEYS, check=pose_refinement.check,
                       safe=pose_refinement.SAFE)

__all__ = ['CAMERA_MODELS', 'CameraModel']
