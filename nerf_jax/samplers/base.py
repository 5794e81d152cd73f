"""The sampler contract: where along each ray the fields are queried, and how the samples become renders.

A sampler is a Flax module built by its classmethod `build` and registered in samplers.SAMPLERS
(model.sampler). It declares, as class attributes, what the shared code needs to know of it, so
nothing outside its file asks which sampler it has:
  RENDERS: the names of the renders __call__ returns, in order; the last is what evaluation shows
  PHOTOMETRIC: those the photometric loss compares with the target colour (default: all of them)
  STATE: the variable collections it keeps itself, outside the optimiser (an occupancy grid), which
    `update` refreshes after each step
  NEEDS: the types.FieldOutput entries its fields must give ('rgb', 'density', or an extra's name)
  SURFACE_LEVEL: the level of `surface` that --mode mesh takes: a number (an SDF's zero), or None: one
    picked from the sampled values (densities have no level of their own: Otsu's split)
  CONTRACTS: whether it implements model.contraction (nerf_jax.samplers.contraction): queries its fields at
    contracted points; the config rule refuses contraction for a sampler that does not
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax.errors import ConfigError
from nerf_jax.types import Conditioning, FieldOutput


class Sampler(nn.Module):
  """Base class of every sampler (samplers.SAMPLERS)."""
  RENDERS: ClassVar[tuple] = ('fine',)
  PHOTOMETRIC: ClassVar[tuple] = ()  # () means RENDERS
  STATE: ClassVar[tuple] = ()
  NEEDS: ClassVar[tuple] = ('rgb', 'density')
  SURFACE_LEVEL: ClassVar = None
  CONTRACTS: ClassVar[bool] = False

  @classmethod
  def build(cls, data_config, model_config, near, far, make_field):
    """The sampler for a scene sampled between near and far (floats); make_field() builds a new field
    (fields.build_field for this scene), called once per field the sampler needs."""
    raise NotImplementedError

  @classmethod
  def scene_problems(cls, model_config, scene):
    """What makes this sampler unfit for `scene` (a datasets.SceneSplit: photos without masks, say),
    as messages naming the key to change; the task raises them before any work. Default: none."""
    del model_config, scene
    return []

  @classmethod
  def photometric(cls):
    return cls.PHOTOMETRIC or cls.RENDERS

  def __call__(self, rays, keys=None, background=None):
    """rays: types.Rays [...]; keys: uint32 [..., 2] one PRNG key per ray, or None (deterministic:
    evaluation); background: float32 [..., 3] behind each ray, or None (the white_bkgd setting) ->
    {name: RenderResult [...]} in RENDERS order."""
    raise NotImplementedError

  def field(self, points, viewdirs, cond=None):
    """The shown field (the one the last render samples) at points float32 [..., S, 3] seen along
    viewdirs float32 [..., 3]: a FieldOutput with a density (an SDF sampler converts). What the mesh's
    vertex colours, the density histogram, the grid's update and the checks query (through
    module.apply(variables, ..., method='field'); --mode mesh's values come from `surface`)."""
    raise NotImplementedError

  def surface(self, points, viewdirs, cond=None):
    """What --mode mesh meshes at points float32 [..., S, 3]: float32 [..., S], higher inside the
    scene's solid (the shown field's density here; an SDF method's -sdf), cut at SURFACE_LEVEL."""
    return self.field(points, viewdirs, cond).density

  def update(self, variables, step, key, density):
    """The variables after step `step` (int32 []): STATE refreshed (jittable; key: the step's PRNG key;
    density(variables, points [n, 3]) -> [n], the shown field's density). Called on the unbound
    module, so its attributes are the sampler's settings. Default: unchanged."""
    del step, key, density
    return variables

  def report(self, variables):
    """{name: float} --mode network adds about the sampler's own state (an occupancy grid's fill)."""
    del variables
    return {}


def check_field(sampler_name, sampler_cls, field, field_name):
  """Raises ConfigError unless `field` (a built field module) returns a FieldOutput with every entry
  sampler_cls.NEEDS names, checked on shapes only (jax.eval_shape): before the first step, not inside it."""
  points, viewdirs = jnp.zeros((1, 2, 3), jnp.float32), jnp.zeros((1, 3), jnp.float32)
  cond = Conditioning(camera=jnp.zeros((1,), jnp.int32))
  try:
    output = jax.eval_shape(lambda: field.init_with_output(jax.random.PRNGKey(0), points, viewdirs, cond)[0])
  except TypeError as err:
    raise ConfigError(f'model.field={field_name!r} ({type(field).__name__}) cannot be called as a field '
                      f'(points, viewdirs, cond) -> FieldOutput: {err}') from err
  if not isinstance(output, FieldOutput):
    raise ConfigError(f'model.field={field_name!r} ({type(field).__name__}) returns {type(output).__name__}, '
                      f'not a types.FieldOutput: model.sampler={sampler_name!r} needs '
                      f'{list(sampler_cls.NEEDS)} from it (docs/extending.md, "Fields").')
  have = {name for name in ('rgb', 'density') if getattr(output, name) is not None} | set(output.extras)
  missing = [name for name in sampler_cls.NEEDS if name not in have]
  if missing:
    raise ConfigError(f'model.sampler={sampler_name!r} needs {missing} from its field, but '
                      f'model.field={field_name!r} gives {sorted(have)}: choose a field that gives them or '
                      f'another sampler ({sampler_cls.__name__}.NEEDS).')
