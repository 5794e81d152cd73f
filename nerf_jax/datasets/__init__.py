"""Scene datasets by format: data.format picks a loader from FORMATS.

A loader is `load(data_config, split, views=None) -> SceneSplit` (views: frame indices, all when None);
a new format is a file of its own plus one `FORMATS.register` line below. The 'blender' format also
serves the built-in scenes (generated.GENERATED_SCENES, e.g. 'spheres'), rendered on first use
(blender.load). 'auto' reads the scene folder and picks one (detect_format), saying which in one line.
"""

import json
import os

import ml_collections
import numpy as np

from nerf_jax.datasets import blender, colmap, llff, transforms
from nerf_jax.datasets.generated import GENERATED_SCENES
from nerf_jax.datasets.scene import SceneSplit, check_split
from nerf_jax.errors import ConfigError, DatasetError
from nerf_jax.registry import Registry

BOUNDS = ('config', 'scene')  # data.bounds: where near / far come from
FORMATS = Registry('dataset format', 'data.format')
FORMATS.register('blender', blender.load)
FORMATS.register('colmap', colmap.load)
FORMATS.register('llff', llff.load)
FORMATS.register('transforms', transforms.load)


def detect_format(scene_dir):
  """(format, why): the data.format whose files scene_dir holds, checked in this order: a COLMAP model
  (sparse/0 or sparse/) -> 'colmap'; a transforms*.json with a focal length or an image size (a phone
  capture's: transforms.has_intrinsics) -> 'transforms'; poses_bounds.npy -> 'llff'; Blender's
  transforms_train.json (camera_angle_x alone) or a built-in scene's name -> 'blender'. Else a
  DatasetError naming the folder and what each format needs."""
  for sparse in (os.path.join(scene_dir, 'sparse', '0'), os.path.join(scene_dir, 'sparse')):
    if colmap.model_extension(sparse):
      return 'colmap', f'a COLMAP model in {os.path.relpath(sparse, scene_dir)}/'
  candidates = [os.path.join(scene_dir, 'transforms.json')] + [
      os.path.join(scene_dir, f'transforms_{s}.json') for s in transforms.SPLIT_FILES]
  for path in candidates:
    if os.path.isfile(path):
      try:
        with open(path) as f:
          meta = json.load(f)
      except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f'{path!r} could not be read as JSON ({e}); re-export it, or set '
                           f'data.format.') from e
      if isinstance(meta, dict) and transforms.has_intrinsics(meta):
        return 'transforms', f'{os.path.basename(path)} with intrinsics'
      if os.path.basename(path) != 'transforms.json':
        return 'blender', f'{os.path.basename(path)} with camera_angle_x alone (a Blender scene)'
  if os.path.isfile(os.path.join(scene_dir, 'poses_bounds.npy')):
    return 'llff', 'poses_bounds.npy'
  if os.path.basename(os.path.normpath(scene_dir)) in GENERATED_SCENES:
    return 'blender', 'the name of a built-in scene'
  raise DatasetError(
      f'data.format=\'auto\' found no scene in {scene_dir!r}: it looks for sparse/0/ (colmap), '
      f'transforms.json with fl_x or w (transforms), poses_bounds.npy (llff) or transforms_train.json '
      f'(blender). Point data.root/data.scene at the scene, or set data.format.')


_said = set()  # (scene folder, format): the start-up line, once per process


def resolve_format(data_config):
  """data_config with its format settled: unchanged unless data.format is 'auto', else a copy with the
  detected one (detect_format), said in one line the first time."""
  if data_config.format != 'auto':
    return data_config
  scene_dir = os.path.join(data_config.root, data_config.scene)
  name, why = detect_format(scene_dir)
  if (scene_dir, name) not in _said:
    _said.add((scene_dir, name))
    print(f"data.format='auto': {scene_dir} holds {why}: reading it as data.format={name!r}.", flush=True)
  resolved = ml_collections.ConfigDict(data_config.to_dict())
  resolved.format = name
  return resolved


def _load_auto(data_config, split, views=None):
  """The 'auto' format: the loader of the format the scene's files show (resolve_format)."""
  resolved = resolve_format(data_config)
  return FORMATS.get(resolved.format)(resolved, split, views)


FORMATS.register('auto', _load_auto)


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


__all__ = ['BOUNDS', 'DatasetError', 'FORMATS', 'SceneSplit', 'detect_format', 'load_split', 'resolve_format',
           'sampling_bounds']
