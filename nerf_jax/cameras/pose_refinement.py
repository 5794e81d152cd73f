"""Camera pose refinement (model.camera='refine'): nerfacto's SO3xR3 camera optimiser.

Each training camera's given pose is multiplied on the right by a learned rigid motion in the camera's
own frame, [exp(omega) t; 0 1]: omega an axis-angle rotation (radians) through the exponential map of
SO(3), t a translation (scene units; the camera centre moves by |t|). Both start at zero, the given
poses. They train at their own learning rate (model.pose_lr_scale times train.lr's schedule), ramped
from 0 over model.pose_warmup_steps (none by default, as in nerfacto), which keeps the poses still while
the fields are noise, and are regularised towards zero by the mean norm of each (nerfacto's camera_optimizer penalty), added to
the loss as 'loss_pose'. The deltas belong to the training cameras: evaluation and rendering, of held-out
views and of the training split alike, use the given poses (tasks.scene.SceneTask.eval_views).
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from nerf_jax import config_rules
from nerf_jax.cameras.base import CameraModel

# nerfacto: its camera optimiser's Adam at 1e-3 against the fields' 1e-2; penalties 1e-3 (rotation,
# radians) and 1e-2 (translation, scene units).
KEYS = {
    'model.pose_lr_scale': (0.1, "'refine' camera model: the pose deltas' learning rate as a multiple of "
                                 "train.lr's schedule"),
    'model.pose_warmup_steps': (0, "'refine' camera model: the pose deltas' learning rate ramps linearly "
                                   "from 0 over these first steps (0: none)"),
    'model.pose_rotation_penalty': (1e-3, "'refine' camera model: weight of the mean rotation delta's "
                                          "norm (radians) in the loss ('loss_pose')"),
    'model.pose_translation_penalty': (1e-2, "'refine' camera model: weight of the mean translation "
                                             "delta's norm (scene units) in the loss ('loss_pose')"),
}
# None of them changes a state's shape (the camera parameter group exists whatever the rate and warm-up,
# SceneTask.optimizer_groups): a resumed run may retune them.
SAFE = tuple(KEYS)


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.pose_lr_scale', 0, low_open=True)
  config_rules.in_range(problems, config, 'model.pose_warmup_steps', 0, integer=True)
  config_rules.in_range(problems, config, 'model.pose_rotation_penalty', 0)
  config_rules.in_range(problems, config, 'model.pose_translation_penalty', 0)
  return problems


def _safe_norm(v):
  """|v| over the last axis with a gradient everywhere (0 at v = 0, where sqrt's would be NaN)."""
  squared = jnp.sum(v * v, axis=-1)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def hat(v):
  """The cross-product matrix: hat(v) @ x = v x x. float [..., 3] -> float [..., 3, 3]."""
  x, y, z = v[..., 0], v[..., 1], v[..., 2]
  zero = jnp.zeros_like(x)
  return jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)


def so3_exp(omega):
  """Rotation matrices of axis-angle vectors (Rodrigues): float32 [..., 3] -> float32 [..., 3, 3].

  R = I + sin(a)/a K + (1 - cos a)/a^2 K^2, K = hat(omega), a = |omega|, the second coefficient as
  2 (sin(a/2) / a)^2 (1 - cos a loses float32's digits at small angles); below 1e-3 radians both are
  their Taylor series, so R and its gradient are exact and finite at omega = 0 (where
  dR/d omega_i = hat(e_i)).
  """
  theta2 = jnp.sum(omega * omega, axis=-1)[..., None, None]
  small = theta2 < 1e-6
  theta = jnp.sqrt(jnp.where(small, 1.0, theta2))  # no 0/0 in the branch jnp.where drops (nor its gradient)
  half = jnp.sin(0.5 * theta) / theta
  a = jnp.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, jnp.sin(theta) / theta)
  b = jnp.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, 2.0 * half * half)
  k = hat(omega)
  return jnp.eye(3, dtype=omega.dtype) + a * k + b * (k @ k)


def rigid_motions(rotation, translation):
  """[exp(rotation) translation; 0 0 0 1]: float32 [..., 3] each -> float32 [..., 4, 4]."""
  top = jnp.concatenate([so3_exp(rotation), translation[..., None]], axis=-1)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], top.dtype), (*top.shape[:-2], 1, 4))
  return jnp.concatenate([top, bottom], axis=-2)


def pose_errors(poses, reference):
  """How far camera-to-world poses are from reference ones: (rotation angle in degrees, camera-centre
  distance in scene units), float64 [N] each (numpy; a measure for reports and tests)."""
  poses, reference = np.asarray(poses, np.float64), np.asarray(reference, np.float64)
  relative = np.swapaxes(poses[:, :3, :3], -1, -2) @ reference[:, :3, :3]
  cosine = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
  return np.degrees(np.arccos(cosine)), np.linalg.norm(poses[:, :3, 3] - reference[:, :3, 3], axis=-1)


class PoseRefinement(CameraModel):
  """poses float32 [B, 4, 4] camera-to-world, camera int32 [B] -> pose @ rigid_motions(deltas[camera]).

  Parameters: 'rotation' and 'translation', float32 [num_cameras, 3] each, from zero.
  """
  num_cameras: int = 1
  rotation_penalty: float = 1e-3
  translation_penalty: float = 1e-2

  @nn.compact
  def __call__(self, poses, camera):
    rotation = self.param('rotation', nn.initializers.zeros, (self.num_cameras, 3))
    translation = self.param('translation', nn.initializers.zeros, (self.num_cameras, 3))
    return poses @ rigid_motions(rotation[camera], translation[camera])

  def penalty(self, params):
    """rotation_penalty * mean |omega| + translation_penalty * mean |t| over the cameras."""
    return (self.rotation_penalty * jnp.mean(_safe_norm(params['rotation']))
            + self.translation_penalty * jnp.mean(_safe_norm(params['translation'])))

  def report(self, params):
    """How far the deltas moved the cameras: each camera's rotation angle |omega| (degrees) and centre
    displacement |t| (scene units), their means and maxima."""
    angles = jnp.degrees(_safe_norm(params['rotation']))
    distances = _safe_norm(params['translation'])
    return {'pose_rotation_mean_deg': jnp.mean(angles), 'pose_rotation_max_deg': jnp.max(angles),
            'pose_translation_mean': jnp.mean(distances), 'pose_translation_max': jnp.max(distances)}


def build(model_config, num_cameras):
  m = model_config
  return PoseRefinement(lr_scale=m.pose_lr_scale, warmup_steps=m.pose_warmup_steps, num_cameras=num_cameras,
                        rotation_penalty=m.pose_rotation_penalty,
                        translation_penalty=m.pose_translation_penalty)
