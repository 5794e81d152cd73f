"""Two processes on this machine through jax.distributed (loopback coordinator, CPU collectives over
gloo): they train as one 2-device run, write one set of checkpoints and logs, and end with the
parameters of a single-process run."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from nerf_jax import checkpoint, tasks, train
from tests.conftest import REPO, small_fit_config

SETTINGS = {'train.steps': 20, 'train.checkpoint_every': 10, 'train.log_every': 5}


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one(spheres_root, tmp_path):
  config = small_fit_config(spheres_root, **SETTINGS)
  flags = [f'--config.{k}={v}' for k, v in json.loads(config.to_json()).items() if not isinstance(v, dict)]
  for section, values in json.loads(config.to_json()).items():
    if isinstance(values, dict):
      flags += [f'--config.{section}.{k}={v}' for k, v in values.items()
                if not isinstance(v, list) and section != 'distributed']
  port, workdir = _free_port(), str(tmp_path / 'run')
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one CPU device per process
  processes = [
      subprocess.Popen([sys.executable, 'main.py', '--config', 'configs/img_fit.py', f'--workdir={workdir}',
                        *flags, f'--config.distributed.coordinator_address=localhost:{port}',
                        '--config.distributed.num_processes=2', f'--config.distributed.process_id={i}'],
                       cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  outputs = [p.communicate(timeout=400)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  assert 'Evaluation at step 20' in outputs[0] and 'Evaluation at step 20' not in outputs[1]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints')), key=int) == ['10', '20']
  assert len([n for n in os.listdir(workdir) if n.startswith('events.out.tfevents')]) == 1
  # The two-process checkpoint restores in this single process and matches a single-process run.
  ckpts = checkpoint.Checkpoints(workdir, config)
  task = tasks.make_task(config)
  restored, _ = ckpts.restore(train.create_train_state(config, task))
  ckpts.close()
  single = train.train_and_evaluate(config, str(tmp_path / 'single'))
  difference = max(float(np.max(np.abs(a - b))) for a, b in zip(
      jax.tree_util.tree_leaves(jax.device_get(restored.params)),
      jax.tree_util.tree_leaves(jax.device_get(single.params))))
  print(f'2 processes vs 1, after 20 steps: max |param difference| {difference:.3g}')
  assert int(restored.step) == 20 and difference < 1e-5
