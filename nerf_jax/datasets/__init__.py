"""Scene datasets. Every scene is read through the Blender format; built-in scenes are rendered first.

The registry is explicit: `generated.GENERATED_SCENES` names the scenes the project renders itself;
any other scene name is looked up on disk under `data.root`.
"""

from nerf_jax.datasets import blender, generated
from nerf_jax.datasets.blender import DatasetError, SceneSplit


def load_split(data_config, split, views=None):
  """Loads `split` of the scene `data_config.scene` under `data_config.root` (see blender.load_split)."""
  generated.ensure_scene(data_config.root, data_config.scene)
  return blender.load_split(data_config.root, data_config.scene, split,
                            input_ratio=data_config.input_ratio, white_bkgd=data_config.white_bkgd,
                            views=views)


__all__ = ['DatasetError', 'SceneSplit', 'load_split']
