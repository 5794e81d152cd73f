"""CameraModel: the base class of a camera model with parameters (cameras.CAMERA_MODELS).

Apart from the registry (cameras/__init__.py) so that a model in a file of its own (pose_refinement.py)
can subclass it while the registry registers that file's model: no import cycle. The package exports it too.
"""

import flax.linen as nn


class CameraModel(nn.Module):
  """Base class of a camera model with parameters: __call__(poses [B, 4, 4], camera [B]) -> poses.

  lr_scale: its parameters' learning rate as a multiple of train.lr's schedule; warmup_steps: that rate
  ramps linearly from 0 over the first warmup_steps steps (0: none). The task adds the parameter group
  (tasks.scene.SceneTask.optimizer_groups; optim.make_optimizer's groups): pose refinement usually
  wants less than the fields, and no motion while the fields are still noise.

  Two hooks, both of the model's trained collection `params` (the state's variables['camera']) and
  jittable, which a model without a regulariser or anything to report keeps as they are:
    penalty(params) -> float32 [] added to the training loss (metric 'loss_pose'), or None: none;
    report(params) -> {name: float32 []}: how far it moved the poses, logged with the training metrics
      (train/<name>) and printed by --mode network.
  """
  lr_scale: float = 1.0
  warmup_steps: int = 0

  def penalty(self, params):
    del params
    return None

  def report(self, params):
    del params
    return {}
