"""Fields and encodings by name: model.field, model.encoding and model.dir_encoding pick them.

A field maps (points float32 [..., S, 3], viewdirs float32 [..., 3]) to (rgb float32 [..., S, 3],
sigma float32 [..., S] >= 0); an encoding maps float32 [..., d] to float32 [..., features]. Both are
Flax modules. A new one is a file of its own with a `build` function, plus one line below:
  encoding: build(model_config, role) -> nn.Module, role 'position' (points, image (u, v)) or 'direction'
  field: build(model_config, encoding, dir_encoding) -> nn.Module
"""

from nerf_jax.fields import frequency, hashgrid, mlp, ngp, sh
from nerf_jax.fields.layers import COMPUTE_DTYPES, compute_dtype
from nerf_jax.registry import Registry

ENCODINGS = Registry('encoding', 'model.encoding')
FIELDS = Registry('field', 'model.field')

ENCODINGS.register('frequency', frequency.build)
ENCODINGS.register('hashgrid', hashgrid.build)
ENCODINGS.register('sh', sh.build)
FIELDS.register('mlp', mlp.build)
FIELDS.register('ngp', ngp.build)


def build_encoding(model_config, role):
  """The encoding model.encoding (role 'position') or model.dir_encoding (role 'direction') names."""
  key = {'position': 'model.encoding', 'direction': 'model.dir_encoding'}[role]
  return ENCODINGS.get(model_config[key.split('.')[1]], key)(model_config, role)


def build_field(model_config):
  """A new field as model.field names, on its position and direction encodings."""
  return FIELDS.get(model_config.field)(model_config, build_encoding(model_config, 'position'),
                                        build_encoding(model_config, 'direction'))


__all__ = ['COMPUTE_DTYPES', 'ENCODINGS', 'FIELDS', 'build_encoding', 'build_field', 'compute_dtype']
