"""Damaged checkpoints and a second training, put in on purpose: a truncated, missing or garbage file in
the latest checkpoint (resume and evaluate land on the previous step with the numbers of a run that
stopped there), train.resume_step, and the workdir's lock (two trainings at once, a stale lock, the
lock released after SIGTERM, after an error, and after kill -9 taken over)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from nerf_jax import checkpoint, errors, train, workdir_lock
from tests.conftest import REPO, small_fit_config
from tests.test_interrupts import _settings, _start, _steps_done, _wait_for


@pytest.fixture(scope='module')
def run(spheres_root, tmp_path_factory):
  """A 60-step image fit with checkpoints 30 and 60, and its evaluation at each step (the truth a
  fall-back must reproduce)."""
  workdir = str(tmp_path_factory.mktemp('recovery') / 'run')
  config = small_fit_config(spheres_root)
  train.train_and_evaluate(config, workdir)
  at = {step: train.evaluate_checkpoint(small_fit_config(spheres_root, **{'train.resume_step': step}), workdir)
        for step in (30, 60)}
  return config, workdir, at


def _largest_file(step_dir):
  with open(os.path.join(step_dir, checkpoint.FILES_MANIFEST)) as f:
    files = json.load(f)
  return os.path.join(step_dir, max(files, key=lambda name: files[name][0]))


def _damage(workdir, fault):
  step_dir = os.path.join(workdir, 'checkpoints', '60')
  target = _largest_file(step_dir)
  if fault.endswith('without its file list'):  # a checkpoint saved before the file lists: orbax alone
    os.remove(os.path.join(step_dir, checkpoint.FILES_MANIFEST))
  if fault.startswith('truncated'):
    with open(target, 'r+b') as f:
      f.truncate(100)
  elif fault == 'missing':
    os.remove(target)
  else:
    size = os.path.getsize(target)
    with open(target, 'wb') as f:
      f.write(np.random.default_rng(0).bytes(size))
  return os.path.relpath(target, step_dir)


@pytest.mark.parametrize('fault', ['truncated', 'missing', 'garbage', 'truncated without its file list'])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_step(run, tmp_path, capsys, fault):
  config, source, at = run
  workdir = str(tmp_path / 'run')
  shutil.copytree(source, workdir)
  name = _damage(workdir, fault)
  capsys.readouterr()
  result = train.evaluate_checkpoint(config, workdir)
  said = [line for line in capsys.readouterr().out.splitlines() if 'cannot be read' in line]
  # The numbers of the run stopped at step 30, exactly.
  assert result['psnr'] == at[30]['psnr'] and result['ssim'] == at[30]['ssim'] and at[60]['psnr'] != at[30]['psnr']
  assert len(said) == 1 and said[0].startswith(f'Checkpoint 60 in {workdir}/checkpoints cannot be read (')
  assert 'left in place; trying step 30' in said[0] and 'Traceback' not in said[0]
  if 'file list' not in fault:  # the file and what is wrong with it
    why = {'truncated': 'is 100 bytes; it was saved with', 'missing': 'is missing',
           'garbage': 'has changed since it was saved'}[fault]
    assert f'file {name} {why}' in said[0]
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '60'))  # a read-only mode moves nothing
  # Training resumes from step 30, moving the damaged step aside (kept, not deleted) so that its own
  # save of step 60 does not collide with it; that save is the one a run from 30 makes.
  resumed = train.train_and_evaluate(small_fit_config(config.data.root), workdir)
  moved = os.path.join(workdir, checkpoint.DAMAGED_DIR, '60')
  assert int(resumed.step) == 60 and os.path.isdir(moved)
  assert fault == 'missing' or os.path.isfile(os.path.join(moved, name))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['30', '60']
  assert train.evaluate_checkpoint(config, workdir)['psnr'] == pytest.approx(at[60]['psnr'], abs=1e-4)
  with open(os.path.join(workdir, checkpoint.RESTORE_LOG)) as f:
    assert 'checkpoint 60' in f.read()


def test_no_readable_checkpoint_and_resume_step_are_one_line_errors(run, tmp_path):
  config, source, at = run
  workdir = str(tmp_path / 'run')
  shutil.copytree(source, workdir)
  with pytest.raises(errors.CheckpointError, match=r'No checkpoint of step 45 .* holds steps \[30, 60\]'):
    train.evaluate_checkpoint(small_fit_config(config.data.root, **{'train.resume_step': 45}), workdir)
  for step in ('30', '60'):
    os.remove(_largest_file(os.path.join(workdir, 'checkpoints', step)))
  with pytest.raises(errors.CheckpointError, match=r'No checkpoint in .* can be read \(60: file .* is '
                                                   r'missing; 30: file .* is missing\)\. Nothing was changed'):
    train.evaluate_checkpoint(config, workdir)
  with pytest.raises(errors.CheckpointError, match=r'Checkpoint 30 in .* cannot be read: file .* is missing'):
    train.evaluate_checkpoint(small_fit_config(config.data.root, **{'train.resume_step': 30}), workdir)
  with pytest.raises(errors.CheckpointError, match=r'train.resume_step=30 but .* holds newer steps \[60\]'):
    train.train_and_evaluate(small_fit_config(config.data.root, **{'train.resume_step': 30,
                                                                    'train.steps': 90}), workdir)


def _main(workdir, settings, **kwargs):
  args = [sys.executable, os.path.join(REPO, 'main.py'), '--config', 'configs/img_fit.py',
          f'--workdir={workdir}', *[f'--config.{k}={v}' for k, v in settings.items()]]
  return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_two_trainings_in_one_workdir_one_refuses(spheres_root, tmp_path):
  workdir = str(tmp_path / 'run')
  settings = _settings(spheres_root, **{'train.steps': 400, 'train.checkpoint_every': 100,
                                        'train.log_every': 100, 'train.progress_every_s': 30.0})
  first, second = _main(workdir, settings), _main(workdir, settings)
  outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
  codes = sorted(p.returncode for p in (first, second))
  assert codes == [0, 1], outputs
  refused = outputs[[first.returncode, second.returncode].index(1)]
  lines = refused.strip().splitlines()
  assert lines[-1].startswith(f'error: Another training holds {workdir}/train.lock (pid ')
  assert '--workdir' in lines[-1] and 'Traceback' not in refused and len(lines) <= 3, refused
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints')), key=int) == ['200', '300', '400']  # keep_checkpoints 3
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_NAME))  # released by the winner
  config = small_fit_config(spheres_root, **{'train.steps': 400})
  ckpts = checkpoint.Checkpoints(workdir, config, create=False)
  try:
    for step in ckpts.steps():
      assert checkpoint.verify_files(os.path.join(ckpts.directory, str(step))) is None
  finally:
    ckpts.close()


def _dead_pid():
  process = subprocess.Popen([sys.executable, '-c', 'pass'])
  process.wait()
  return process.pid


def test_the_lock_is_held_while_training_and_released_on_every_exit_path(spheres_root, tmp_path, capsys):
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  # Held by a live process (this one): a training refuses, a read-only mode runs beside it.
  with workdir_lock.WorkdirLock(workdir):
    with pytest.raises(errors.CheckpointError, match=rf'Another training holds {workdir}/train.lock \(pid '
                                                     rf'{os.getpid()} '):
      train.train_and_evaluate(small_fit_config(spheres_root), workdir)
  train.train_and_evaluate(small_fit_config(spheres_root, **{'train.steps': 30}), workdir)
  with workdir_lock.WorkdirLock(workdir):
    assert train.evaluate_checkpoint(small_fit_config(spheres_root), workdir)['num_views'] == 1
  # A stale lock (its pid no longer runs here) is taken over, with a line saying so.
  path = os.path.join(workdir, workdir_lock.LOCK_NAME)
  with open(path, 'w') as f:
    json.dump({'host': os.uname().nodename, 'pid': _dead_pid(), 'time': 0}, f)
  capsys.readouterr()
  train.train_and_evaluate(small_fit_config(spheres_root, **{'train.steps': 60}), workdir)
  assert 'Took over the stale lock' in capsys.readouterr().out and not os.path.exists(path)
  # An error (a NaN loss) releases it.
  with pytest.raises(errors.NonFiniteLossError):
    train.train_and_evaluate(small_fit_config(spheres_root, **{'train.lr': 1e30, 'train.steps': 90}),
                             str(tmp_path / 'nan'))
  assert not os.path.exists(os.path.join(tmp_path, 'nan', workdir_lock.LOCK_NAME))
  # Another host's lock is never taken over.
  with open(path, 'w') as f:
    json.dump({'host': 'elsewhere', 'pid': 1, 'time': 0}, f)
  with pytest.raises(errors.CheckpointError, match=r"held by a training on another host \(pid 1 on 'elsewhere'"):
    train.train_and_evaluate(small_fit_config(spheres_root, **{'train.steps': 90}), workdir)
  assert json.load(open(path))['host'] == 'elsewhere'


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_training_leaves_no_lock_or_a_stale_one(spheres_root, tmp_path, signum):
  workdir, log_path = str(tmp_path / 'run'), str(tmp_path / 'log')
  settings = _settings(spheres_root, **{'train.steps': 100000, 'train.checkpoint_every': 20})
  path = os.path.join(workdir, workdir_lock.LOCK_NAME)
  with open(log_path, 'w') as log:
    process = _start(workdir, settings, log)
    _wait_for(lambda: _steps_done(log_path) >= 5, process)
    assert json.load(open(path))['pid'] == process.pid
    process.send_signal(signum)
    process.wait(timeout=120)
  if signum == signal.SIGTERM:
    assert not os.path.exists(path)
    return
  assert json.load(open(path))['pid'] == process.pid  # kill -9 runs no code: the lock stays, stale
  settings.update({'train.steps': _steps_done(log_path) + 25, 'train.progress_every_s': 30.0})
  result = _main(workdir, settings)
  out = result.communicate(timeout=300)[0]
  assert result.returncode == 0, out
  assert f'Took over the stale lock {path} of a training that is no longer running (pid {process.pid}' in out
  assert not os.path.exists(path)
