"""Training that survives interruption: real processes stopped by SIGINT and SIGTERM, then resumed, end
with the parameters of an uninterrupted run. (SIGKILL during a save: tests/test_faults.py.)"""

import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from nerf_jax import checkpoint, tasks, train
from tests.conftest import REPO, small_fit_config


def _flags(settings):
  return [f'--config.{k}={v}' for k, v in settings.items()]


def _start(workdir, settings, log):
  args = [sys.executable, os.path.join(REPO, 'main.py'), '--config', 'configs/img_fit.py',
          f'--workdir={workdir}', *_flags(settings)]
  return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _settings(root, **values):
  settings = {'data.root': root, 'data.scene': 'spheres', 'model.width': 64, 'model.depth': 2,
              'model.num_freqs': 6, 'train.batch_size': 1024, 'train.lr': 5e-3,
              'train.lr_decay_steps': 1000, 'train.log_every': 1, 'train.eval_every': 0,
              'train.progress_every_s': 0.0,  # a progress line per step in the log file
              'eval.chunk': 1000}
  settings.update(values)
  return settings


def _steps_done(log_path):
  with open(log_path) as f:
    counts = re.findall(r'^train (\d+)/\d+ steps', f.read(), flags=re.M)
  return int(counts[-1]) if counts else 0


def _wait_for(condition, process, timeout=240):
  deadline = time.time() + timeout
  while not condition():
    assert process.poll() is None, 'training ended early'
    assert time.time() < deadline, 'timed out'
    time.sleep(0.02)


def _params_at(root, workdir, step, settings):
  config = small_fit_config(root, **settings)
  ckpts = checkpoint.Checkpoints(workdir, config)
  state, _ = ckpts.restore(train.create_train_state(config, tasks.make_task(config)), step)
  ckpts.close()
  return jax.tree_util.tree_leaves(jax.device_get(state.params))


def _max_difference(a, b):
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_the_current_step_and_resume_is_exact(spheres_root, tmp_path, signum):
  workdir, log_path = str(tmp_path / 'run'), str(tmp_path / 'log')
  long = _settings(spheres_root, **{'train.steps': 100000, 'train.checkpoint_every': 100000})
  with open(log_path, 'w') as log:
    process = _start(workdir, long, log)
    _wait_for(lambda: _steps_done(log_path) >= 15, process)
    process.send_signal(signum)
    code = process.wait(timeout=120)
  with open(log_path) as f:
    out = f.read()
  assert code == 128 + signum, out[-2000:]
  stopped = int(re.search(rf'{signal.Signals(signum).name} at step (\d+): saved a checkpoint', out).group(1))
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == [str(stopped)]
  # Resume to a few steps past the interruption; compare with one uninterrupted run to that step.
  end = stopped + 7
  short = {'train.steps': end, 'train.checkpoint_every': 100000, 'train.log_every': 1}
  train.train_and_evaluate(small_fit_config(spheres_root, **short), workdir)
  straight = train.train_and_evaluate(small_fit_config(spheres_root, **short), str(tmp_path / 'straight'))
  resumed = _params_at(spheres_root, workdir, end, short)
  difference = _max_difference(resumed, jax.tree_util.tree_leaves(jax.device_get(straight.params)))
  print(f'{signal.Signals(signum).name}: stopped at step {stopped}, resumed to {end}, '
        f'max |param difference| {difference:.3g}')
  assert difference < 1e-6
