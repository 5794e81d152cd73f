"""Camera models by name: model.camera picks how the training cameras' poses reach the rays.

Rays are made inside the loss (tasks.scene.SceneTask.batch_rays), from the poses of the batch's
images passed through the camera model, so a model with parameters learns them with the fields. An
entry is
  build(model_config, num_cameras) -> None (the given poses) or a CameraModel called as
  module(poses float32 [B, 4, 4] camera-to-world, camera int32 [B] training-camera index) -> poses [B, 4, 4]
Its parameters are the variable collection 'camera' of the run's state. Evaluation and rendering use
the given poses (held-out views have no learned correction). A new model is a file of its own plus one
line below (docs/extending.md works pose refinement through).
"""

import flax.linen as nn

from nerf_jax.registry import Registry


class CameraModel(nn.Module):
  """Base class of a camera model with parameters: __call__(poses [B, 4, 4], camera [B]) -> poses.

  lr_scale: its parameters' learning rate as a multiple of train.lr's schedule (the task adds the
  parameter group; pose refinement usually wants less than the fields).
  """
  lr_scale: float = 1.0


CAMERA_MODELS = Registry('camera model', 'model.camera')
CAMERA_MODELS.register('fixed', lambda model_config, num_cameras: None)  # the given poses, nothing learned

__all__ = ['CAMERA_MODELS', 'CameraModel']
