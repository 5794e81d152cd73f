"""Per-image appearance codes (NeRF-W, nerfacto's appearance embedding), for every field.

Photos of one scene differ in exposure and white balance; a field that must explain them with geometry
grows floaters. With model.appearance_features > 0, fields.build_field gives whichever field it builds an
AppearanceCode as its `conditioning` module: each training image has a learned code that the colour
branch sees beside the encoded view direction (fields.layers.per_ray_inputs). A ray of no training
camera (types.NO_CAMERA: a held-out view, a camera path, a mesh's colours) gets the codes' mean or zeros
(model.appearance_eval), and the evaluation output says which (describe).

The keys belong to the fields registry as a whole (registry.Registry.share), not to one field: the
feature is the same for every field, a project's own included.
"""

import flax.linen as nn
import jax.numpy as jnp

from nerf_jax import config_rules
from nerf_jax.types import NO_CAMERA

AT_EVAL = ('mean', 'zero')

KEYS = {
    'model.appearance_features': (0, 'every field: the length of each training image\'s appearance code, '
                                     'seen by the colour branch (NeRF-W, nerfacto); 0: no codes'),
    'model.appearance_eval': ('mean', 'every field: the appearance code of a ray of no training camera '
                                      '(held-out views, camera paths): \'mean\' of the codes or \'zero\''),
}
# Evaluating (or continuing) a run with the other code for held-out views changes no parameter.
SAFE = ('model.appearance_eval',)


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.appearance_features', 0, integer=True)
  config_rules.one_of(problems, config, 'model.appearance_eval', AT_EVAL)
  return problems


class AppearanceCode(nn.Module):
  """cond.camera int32 [...] -> float32 [..., features]: each training image's code (a [num_cameras,
  features] table initialised small, so a new field starts as it would without codes), and for
  NO_CAMERA the codes' mean or zeros (at_eval)."""
  num_cameras: int
  features: int
  at_eval: str = 'mean'

  @nn.compact
  def __call__(self, cond):
    codes = self.param('codes', nn.initializers.normal(0.01), (self.num_cameras, self.features))
    unseen = jnp.mean(codes, axis=0) if self.at_eval == 'mean' else jnp.zeros(self.features, codes.dtype)
    known = cond.camera != NO_CAMERA
    # The index is clipped where unknown, so the gather stays in the table; the where's other branch
    # gives those rays no gradient into any row.
    return jnp.where(known[..., None], codes[jnp.where(known, cond.camera, 0)], unseen)


def build(model_config, num_cameras):
  """The AppearanceCode model.appearance_features and model.appearance_eval ask for, one code per
  training camera; None where model.appearance_features is 0."""
  m = model_config
  if not m.appearance_features:
    return None
  return AppearanceCode(num_cameras, m.appearance_features, m.appearance_eval)


def describe(model_config, num_cameras, own_codes):
  """What the views of an evaluation were rendered with, for its printed lines and metrics.json
  ('appearance'); own_codes: the views are training views (each has its own code). None without codes."""
  m = model_config
  if not m.appearance_features:
    return None
  if own_codes:
    return f"each training view's own code (of {num_cameras} training codes)"
  if m.appearance_eval == 'mean':
    return f"mean of {num_cameras} training codes (model.appearance_eval='mean')"
  return f"zero code, none of the {num_cameras} training codes (model.appearance_eval='zero')"
