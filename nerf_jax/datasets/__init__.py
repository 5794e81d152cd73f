"""Scene datasets by format: data.format picks a loader from FORMATS.

A loader is `load(data_config, split, views=None) -> SceneSplit` (views: frame indices, all when None);
a new format is a file of its own plus one `FORMATS.register` line below. The built-in scenes
(generated.GENERATED_SCENES, e.g. 'spheres') are rendered on first use in the Blender format.
"""

from nerf_jax.datasets import blender, generated
from nerf_jax.datasets.scene import SceneSplit, check_split
from nerf_jax.errors import DatasetError
from nerf_jax.registry import Registry

FORMATS = Registry('dataset format', 'data.format')
FORMATS.register('blender', blender.load)


def load_split(data_config, split, views=None):
  """Split `split` of the scene data_config names, read by the loader of data_config.format, its poses
  and intrinsics checked whatever the format (scene.check_split)."""
  load = FORMATS.get(data_config.format)
  if data_config.format == 'blender':
    generated.ensure_scene(data_config.root, data_config.scene)
  scene = load(data_config, split, views)
  check_split(scene, f'split {split!r} of {data_config.scene!r} ({data_config.format} format, under '
                     f'{data_config.root!r})')
  return scene


__all__ = ['DatasetError', 'FORMATS', 'SceneSplit', 'load_split']
