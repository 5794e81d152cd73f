"""Fields and encodings by name: model.field, model.encoding and model.dir_encoding pick them.

A field maps (points float32 [..., S, 3], viewdirs float32 [..., 3], cond types.Conditioning [...] or
None) to a types.FieldOutput (rgb float32 [..., S, 3], density float32 [..., S] >= 0, extras by name);
an encoding maps float32 [..., d] to float32 [..., features]. Both are Flax modules. A new one is a file
of its own with a `build` function, plus one line below (with the keys and rule the file owns):
  encoding: build(model_config, role) -> nn.Module, role 'position' (points, image (u, v)) or 'direction'
  field: build(model_config, encoding, dir_encoding, scene) -> nn.Module, scene a FieldScene
A field whose build also takes `conditioning=` (a module of the rays' types.Conditioning, fed to its
colour branch: mlp, ngp and sdf do) gets per-image appearance codes when model.appearance_features > 0
(fields.appearance: keys every field gets, registered with FIELDS.share).
"""

import inspect
from typing import NamedTuple

from nerf_jax.errors import ConfigError
from nerf_jax.fields import appearance, frequency, hashgrid, mlp, ngp, sdf, sh
from nerf_jax.fields.layers import COMPUTE_DTYPES, compute_dtype
from nerf_jax.registry import Registry

ENCODINGS = Registry('encoding', 'model.encoding', also=('model.dir_encoding',))
FIELDS = Registry('field', 'model.field')

ENCODINGS.register('frequency', frequency.build, keys=frequency.KEYS, check=frequency.check)
ENCODINGS.register('hashgrid', hashgrid.build, keys=hashgrid.KEYS, check=hashgrid.check, safe=hashgrid.SAFE)
ENCODINGS.register('sh', sh.build, keys=sh.KEYS, check=sh.check)
FIELDS.register('mlp', mlp.build, keys=mlp.KEYS, check=mlp.check)
FIELDS.register('ngp', ngp.build, keys=ngp.KEYS, check=ngp.check)
FIELDS.register('sdf', sdf.build, keys=sdf.KEYS, check=sdf.check)
FIELDS.share('appearance', keys=appearance.KEYS, check=appearance.check, safe=appearance.SAFE)


class FieldScene(NamedTuple):
  """What a field may need to know of the scene it is built for: num_cameras, the training split's
  views (a per-image code's table size)."""
  num_cameras: int = 1


def build_encoding(model_config, role):
  """The encoding model.encoding (role 'position') or model.dir_encoding (role 'direction') names."""
  key = {'position': 'model.encoding', 'direction': 'model.dir_encoding'}[role]
  return ENCODINGS.get(model_config[key.split('.')[1]], key)(model_config, role)


def build_field(model_config, scene):
  """A new field as model.field names, on its position and direction encodings, for `scene`
  (FieldScene: a per-image code's table is sized by it, so a caller must say); with
  model.appearance_features > 0, given an appearance.AppearanceCode of scene.num_cameras codes as its
  `conditioning`."""
  build = FIELDS.get(model_config.field)
  args = (model_config, build_encoding(model_config, 'position'), build_encoding(model_config, 'direction'),
          scene)
  code = appearance.build(model_config, scene.num_cameras)
  if code is None:
    return build(*args)
  if not _takes_conditioning(build):
    raise ConfigError(f'model.appearance_features={model_config.appearance_features} gives every field a '
                      f'per-image appearance code, but model.field={model_config.field!r} takes no '
                      f'conditioning module (its build has no conditioning= argument): set '
                      f'model.appearance_features=0 or choose a field that takes one (mlp, ngp, sdf).')
  return build(*args, conditioning=code)


def _takes_conditioning(build):
  try:
    parameters = inspect.signature(build).parameters.values()
  except (TypeError, ValueError):  # no signature to read: let the call say
    return True
  return any(p.name == 'conditioning' or p.kind == p.VAR_KEYWORD for p in parameters)


__all__ = ['COMPUTE_DTYPES', 'ENCODINGS', 'FIELDS', 'FieldScene', 'build_encoding', 'build_field',
           'compute_dtype']
