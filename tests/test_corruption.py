"""A corruption sweep: the built-in scene copied and damaged in a dozen ways. Each damage is a
DatasetError naming the file or frame (and a PROBLEM line of --mode dataset), never a traceback."""

import json
import os
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from nerf_jax import checks, datasets, errors
from tests.conftest import small_nerf_config
from tests.test_main import run_main


def _frames(root):
  with open(os.path.join(root, 'transforms_train.json')) as f:
    return json.load(f)


def _write_meta(root, meta):
  with open(os.path.join(root, 'transforms_train.json'), 'w') as f:
    json.dump(meta, f)


def _edit_pose(value):
  def damage(root):
    meta = _frames(root)
    meta['frames'][3]['transform_matrix'][1][2] = value
    _write_meta(root, meta)
  return damage


def _scale_rotation(root):
  meta = _frames(root)
  matrix = np.asarray(meta['frames'][3]['transform_matrix'])
  matrix[:3, 0] *= 2.0
  meta['frames'][3]['transform_matrix'] = matrix.tolist()
  _write_meta(root, meta)


def _image(root, fn):
  path = os.path.join(root, 'train', 'r_3.png')
  fn(path)


def _truncate(path):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])


def _garbage(path):
  with open(path, 'wb') as f:
    f.write(np.random.default_rng(0).bytes(4000))


def _channels(n):
  def damage(path):
    image = iio.imread(path)
    iio.imwrite(path, image[..., 0] if n == 1 else image[..., :n])
  return damage


def _resize(path):
  iio.imwrite(path, iio.imread(path)[::2, ::2])


def _meta(fn):
  def damage(root):
    meta = _frames(root)
    fn(meta)
    _write_meta(root, meta)
  return damage


def _duplicate(meta):
  meta['frames'][5]['file_path'] = meta['frames'][3]['file_path']


# name -> (damage(scene folder), what the message must name)
DAMAGES = {
    'truncated png': (lambda r: _image(r, _truncate), 'r_3.png'),
    'garbage bytes': (lambda r: _image(r, _garbage), 'r_3.png'),
    'wrong size': (lambda r: _image(r, _resize), 'r_3'),
    '1 channel': (lambda r: _image(r, _channels(1)), 'r_3.png'),
    '2 channels': (lambda r: _image(r, _channels(2)), 'r_3.png'),
    '3 channels': (lambda r: _image(r, _channels(3)), 'r_3.png'),
    'nan in a pose': (_edit_pose(float('nan')), 'frame 3 (r_3)'),
    'inf in a pose': (_edit_pose(float('inf')), 'frame 3 (r_3)'),
    'non-orthonormal rotation': (_scale_rotation, 'frame 3 (r_3)'),
    'missing frames': (_meta(lambda m: m.pop('frames')), 'transforms_train.json'),
    'missing camera_angle_x': (_meta(lambda m: m.pop('camera_angle_x')), 'camera_angle_x'),
    'empty split': (_meta(lambda m: m.update(frames=[])), 'transforms_train.json'),
    'duplicate file names': (_meta(_duplicate), 'r_3'),
}


@pytest.fixture()
def damaged(spheres_root, tmp_path, request):
  # Under another name: a missing 'spheres' would be regenerated as the built-in scene.
  root = tmp_path / 'data'
  shutil.copytree(os.path.join(spheres_root, 'spheres'), root / 'copy')
  damage, named = DAMAGES[request.param]
  damage(str(root / 'copy'))
  return small_nerf_config(str(root), **{'data.scene': 'copy'}), named


@pytest.mark.parametrize('damaged', sorted(DAMAGES), indirect=True)
def test_each_damage_is_a_dataset_error_naming_the_file_or_frame(damaged, tmp_path):
  config, named = damaged
  with pytest.raises(errors.DatasetError) as error:
    datasets.load_split(config.data, 'train')
  message = str(error.value)
  assert named in message and '\n' not in message, message
  # --mode dataset reports it as a problem of the train split (and still checks the other splits).
  report, problems = checks.check_dataset(config, str(tmp_path / 'checks'))
  assert [p for p in problems if p.startswith('train: ') and named in p], problems
  assert 'val' in report and 'train' not in report


def test_the_command_line_names_the_frame_without_a_traceback(spheres_root, tmp_path):
  root = tmp_path / 'data'
  shutil.copytree(os.path.join(spheres_root, 'spheres'), root / 'copy')
  _edit_pose(float('nan'))(str(root / 'copy'))
  common = ['--config', 'configs/demo_nerf.py', f'--config.data.root={root}', '--config.data.scene=copy',
            f'--workdir={tmp_path / "run"}']
  for mode in ('dataset', 'train'):
    code, out = run_main(*common, f'--mode={mode}')
    assert code != 0 and 'Traceback' not in out and 'frame 3 (r_3)' in out and 'NaN or Inf' in out, out
