"""Data parallelism: the same global batch on 1, 2 and 4 (simulated CPU) devices gives the same state."""

import json
import os
import subprocess
import sys

import pytest

from nerf_jax import batching, errors
from tests.conftest import REPO


def _compare(spheres_root, task, microbatches, steps):
  result = subprocess.run([sys.executable, os.path.join(REPO, 'tests', 'multidevice_worker.py'),
                           spheres_root, task, str(microbatches), str(steps)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 4
  return report


def test_an_old_layout_checkpoint_restores_on_another_number_of_devices(spheres_root, tmp_path):
  # Occupancy runs saved before the grid left the params are read into today's layout; a run saved on
  # 2 devices evaluates or resumes on 4 or on 1, as a new checkpoint does.
  result = subprocess.run([sys.executable, os.path.join(REPO, 'tests', 'multidevice_worker.py'),
                           spheres_root, 'old_layout', str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  for n in ('4', '1'):
    assert report['restored'][n] == {'step': 3, 'variables_equal': True, 'opt_state_devices': [int(n)]}, report


def test_image_fit_on_2_and_4_devices_matches_1(spheres_root):
  r = _compare(spheres_root, 'img_fit', 1, 3)
  for n in ('2', '4'):
    assert r['losses'][n] == pytest.approx(r['losses']['1'], rel=1e-5)
    assert r['moment_rel_diff'][n] < 1e-5, r  # a sum over devices instead of a mean gives n - 1
    assert r['param_diff'][n] < 1e-6, r
    assert r['render_diff'][n] < 1e-6, r


def test_nerf_with_microbatches_on_2_and_4_devices_matches_1(spheres_root):
  # Two steps, the first under precrop. NeRF's gradients have more rounding noise (sorting, the
  # inverse CDF), which Adam's first steps amplify where a gradient is ~0: a few parameters may
  # move by up to lr; the averaged gradient and the rest must agree.
  r = _compare(spheres_root, 'nerf', 2, 2)
  for n in ('2', '4'):
    assert r['losses'][n] == pytest.approx(r['losses']['1'], rel=1e-4)
    assert r['moment_rel_diff'][n] < 2e-3, r
    assert r['param_share_over_1e-4'][n] < 0.01, r
    assert r['render_diff'][n] < 1e-5, r


def test_batch_that_does_not_split_over_the_devices_is_an_error():
  batching.check_sizes(4, batch_size=1024, microbatches=2, chunk=4096, eval_microbatches=8)
  with pytest.raises(errors.ConfigError, match=r'train.batch_size=1026 .* 4 devices; use a positive multiple of 4'):
    batching.check_sizes(4, batch_size=1026)
  with pytest.raises(errors.ConfigError, match=r'eval.chunk=1002 .* 4 devices'):
    batching.check_sizes(4, chunk=1002)
  with pytest.raises(errors.ConfigError, match=r'leaves 256 per device.*train.microbatches=3'):
    batching.check_sizes(4, batch_size=1024, microbatches=3)
  with pytest.raises(errors.ConfigError, match=r'train.batch_size=1024 exceeds the 1000 items'):
    batching.check_sizes(1, batch_size=1024, pool=1000)
