"""Run by test_parallel.py in its own process, which has 4 CPU devices (XLA_FLAGS is read once, at
JAX's start, so the rest of the suite keeps its single device).

python tests/multidevice_worker.py ROOT TASK MICROBATCHES STEPS -> prints JSON comparing, for 2 and 4 devices,
the state after a few steps and a rendered view against 1 device (same global batch and key).
python tests/multidevice_worker.py ROOT old_layout WORKDIR -> an occupancy run's checkpoint of the old
layout saved on 2 devices, restored on 4 and on 1: JSON of what came back.
"""

import json
import os
import sys

os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from nerf_jax import batching, evaluate, parallel, tasks, train  # noqa: E402
from tests.conftest import save_old_layout, small_fit_config, small_nerf_config  # noqa: E402

def main(root, task_name, microbatches, steps):
  make = small_fit_config if task_name == 'img_fit' else small_nerf_config
  # precrop on the first step only: the switch-over happens inside the compared steps. float32: the
  # splits must agree to float rounding, and in bfloat16 a last-bit difference in one layer's sum can
  # round the next layer's bfloat16 input the other way (~1e-4 in a colour).
  config = make(root, **{'train.microbatches': microbatches, 'train.precrop_steps': 1,
                         'eval.chunk': 256, 'model.dtype': 'float32'})
  task = tasks.make_task(config)
  view = next(task.eval_views('train', (0, 1, 1)))
  params, images, losses, moments = {}, {}, {}, {}
  for n in (1, 2, 4):
    mesh = parallel.make_mesh(jax.devices()[:n])
    state = train.create_train_state(config, task, mesh)
    iteration = train.make_train_iteration(task, batching.BatchPlan.from_config(config.train),
                                           microbatches, mesh)
    data = parallel.put(task.train_data(), parallel.replicated(mesh))
    for _ in range(steps):
      state, metrics = jax.block_until_ready(iteration(state, data))
    params[n] = [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(state.params))]
    moments[n] = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(jax.device_get(state.opt_state[0].mu))])
    losses[n] = float(metrics['loss'])
    # Render one set of parameters (the 1-device run's) on every mesh.
    same = parallel.put(jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state.params),
                                                     params[1]), parallel.replicated(mesh))
    images[n] = evaluate.Evaluator(task, config.eval.chunk, mesh).render(same, view)['rgb']
  flat = {n: np.concatenate([x.ravel() for x in p]) for n, p in params.items()}
  print(json.dumps({
      'devices': jax.device_count(),
      'losses': losses,
      # Parameters: the largest difference, and the share of them differing by more than 1e-4 (Adam
      # turns float-rounding noise in a near-zero gradient into a full-size step, so a few may).
      'param_diff': {n: float(np.max(np.abs(flat[1] - flat[n]))) for n in (2, 4)},
      'param_share_over_1e-4': {n: float(np.mean(np.abs(flat[1] - flat[n]) > 1e-4)) for n in (2, 4)},
      # Adam's first moment is linear in the averaged gradients: an update summed instead of averaged
      # over devices shows here as a relative difference of n - 1.
      'moment_rel_diff': {n: float(np.linalg.norm(moments[1] - moments[n]) / np.linalg.norm(moments[1]))
                          for n in (2, 4)},
      'render_diff': {n: float(np.max(np.abs(images[1] - images[n]))) for n in (2, 4)},
  }))


def old_layout(root, workdir):
  config = small_nerf_config(root, **{'model.sampler': 'occupancy', 'model.box': (-1.5, 1.5),
                                      'model.grid_resolution': 16, 'model.march_steps': 64,
                                      'model.march_samples': (8, 48), 'model.march_eval_samples': (16, 64),
                                      'model.dtype': 'float32'})
  task = tasks.make_task(config)
  variables, _ = save_old_layout(config, task, workdir, 3, parallel.make_mesh(jax.devices()[:2]))
  restored = {}
  for n in (4, 1):
    state, _ = train.load_state(config, task, workdir, parallel.make_mesh(jax.devices()[:n]))
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(state.variables)),
                                                    jax.tree_util.tree_leaves(variables)))
    devices = {len(x.sharding.device_set) for x in jax.tree_util.tree_leaves(state.opt_state)
               if hasattr(x, 'sharding')}
    restored[n] = {'step': int(state.step), 'variables_equal': same, 'opt_state_devices': sorted(devices)}
  print(json.dumps({'devices': jax.device_count(), 'restored': restored}))


if __name__ == '__main__':
  if sys.argv[2] == 'old_layout':
    old_layout(sys.argv[1], sys.argv[3])
  else:
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
