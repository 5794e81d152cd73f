"""Scene datasets by format: data.format picks a loader from FORMATS.

A loader is `load(data_config, split, views=None) -> SceneSplit` (views: frame indices, all when None);
a new format is a file of its own plus one `FORMATS.register` line below. The 'blender' format also
serves the built-in scenes (generated.GENERATED_SCENES, e.g. 'spheres'), rendered on first use
(blender.load).
"""

import numpy as np

from nerf_jax.datasets import blender, colmap, llff
from nerf_jax.datasets.scene import SceneSplit, check_split
from nerf_jax.errors import ConfigError, DatasetError
from nerf_jax.registry import Registry

BOUNDS = ('config', 'scene')  # data.bounds: where near / far come from
FORMATS = Registry('dataset format', 'data.format')
FORMATS.register('blender', blender.load)
FORMATS.register('colmap', colmap.load)
FORMATS.register('llff', llff.load)


def load_split(data_config, split, views=None):
  """Split `split` of the scene data_config names, read by the loader of data_config.format, its poses
  and intrinsics checked whatever the format (scene.check_split)."""
  scene = FORMATS.get(data_config.format)(data_config, split, views)
  check_split(scene, f'split {split!r} of {data_config.scene!r} ({data_config.format} format, under '
                     f'{data_config.root!r})')
  return scene


def sampling_bounds(data_config, scene):
  """(near, far) of the samples along every ray: [0, 1] in NDC (data.ndc), else data.near / data.far, or
  with data.bounds='scene' the scene's own bounds (the closest near and the farthest far of its views)."""
  d = data_config
  if d.ndc:
    if scene.layout != 'forward':
      raise ConfigError(f'data.ndc=True needs a forward-facing scene (LLFF); {d.scene!r} is '
                        f'{scene.layout!r}-facing: set data.ndc=False.')
    return 0.0, 1.0
  if d.bounds == 'config':
    return float(d.near), float(d.far)
  if d.bounds != 'scene':
    raise ConfigError(f'data.bounds must be one of {BOUNDS}, got {d.bounds!r}.')
  if scene.near is None:
    raise ConfigError(f'data.bounds=\'scene\' but the {d.format!r} format gives no depth bounds for '
                      f'{d.scene!r}: set data.bounds=\'config\' with data.near and data.far.')
  return float(np.min(scene.near)), float(np.max(scene.far))


__all__ = ['BOUNDS', 'DatasetError', 'FORMATS', 'SceneSplit', 'load_split', 'sampling_bounds']
