"""Shared fixtures: a small generated scene, the shared lego scene where present, config helpers, and
the store of small trained models every test file may share."""

import fcntl
import os
import shutil
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# One XLA compilation cache for the session, this process's and the subprocesses' its tests start (the
# environment carries it): the tests build the same small models again and again, and compiling them
# was most of a small test's time. A new, empty folder each session, so a run costs what a fresh clone's
# does and no test sees a stale entry.
os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='nerf_jax_test_xla_cache_')
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)

from configs import default, lego  # noqa: E402
from nerf_jax.datasets import generated  # noqa: E402

# The NeRF synthetic data (folder holding lego/); NERF_JAX_DATA overrides the shared default.
DATA_ROOT = os.environ.get('NERF_JAX_DATA', os.path.join(REPO, '..', 'shared', 'data', 'nerf_synthetic_400'))


@pytest.fixture(scope='session')
def spheres_root(tmp_path_factory):
  """A folder holding a small built-in scene 'spheres' (64x64, 8 train / 2 val / 2 test views)."""
  root = tmp_path_factory.mktemp('scenes')
  generated.write_scene(str(root / 'spheres'), size=64,
                        splits={'train': (8, 0), 'val': (2, 1), 'test': (2, 2)})
  return str(root)


@pytest.fixture(scope='session')
def lego_root():
  if not os.path.isfile(os.path.join(DATA_ROOT, 'lego', 'transforms_train.json')):
    pytest.skip(f'lego not found under {DATA_ROOT!r}; set NERF_JAX_DATA to the folder holding lego/')
  return DATA_ROOT


# The small trained models tests share: name -> small_nerf_config's settings. Add a recipe here rather
# than training a near-copy in a test file's fixture.
TRAINED_RECIPES = {
    # 60 steps, an evaluation at 30 and at the end, logs every 10: modes, evaluation, the viewer.
    'nerf_60': {'train.steps': 60, 'train.eval_every': 30, 'train.log_every': 10, 'train.checkpoint_every': 60},
}


class TrainedModels:
  """Small models trained once for the whole test run, whatever the test files and workers asking.

  get(name) -> (config, workdir): a copy of the trained workdir of TRAINED_RECIPES[name] for the asking
  test file (so what one file writes there, another never sees), its config reading the store's own
  copy of the built-in scene. The first worker to ask trains it under a file lock; the others wait for
  it and copy. The store lives in the run's temporary folder, shared by pytest-xdist's workers.
  """

  def __init__(self, root, tmp_path_factory):
    self.root, self._tmp = root, tmp_path_factory
    os.makedirs(root, exist_ok=True)

  def _locked(self, name, make):
    """Runs make(path) once for the whole run: <root>/<name> exists, complete, when it returns."""
    path = os.path.join(self.root, name)
    with open(path + '.lock', 'w') as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      try:
        if not os.path.isfile(os.path.join(path, '.complete')):
          shutil.rmtree(path, ignore_errors=True)
          make(path)
          open(os.path.join(path, '.complete'), 'w').close()
      finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
    return path

  def scenes(self):
    """The folder holding the store's 'spheres' (spheres_root's scene, written once)."""
    return self._locked('scenes', lambda path: generated.write_scene(
        os.path.join(path, 'spheres'), size=64, splits={'train': (8, 0), 'val': (2, 1), 'test': (2, 2)}))

  def get(self, name):
    from nerf_jax import train
    config = small_nerf_config(self.scenes(), **TRAINED_RECIPES[name])
    trained = self._locked(name, lambda path: train.train_and_evaluate(config, path))
    workdir = str(self._tmp.mktemp(name))
    shutil.copytree(trained, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns('.complete', 'train.lock'))
    return config, workdir


@pytest.fixture(scope='session')
def trained_models(tmp_path_factory):
  """The run's TrainedModels (one folder for every pytest-xdist worker of this run)."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
  return TrainedModels(str(shared / 'trained_models'), tmp_path_factory)


def override(config, **values):
  """config with dotted keys replaced: override(c, **{'train.lr': 1e-3})."""
  config = config.copy_and_resolve_references()
  for dotted, value in values.items():
    *path, leaf = dotted.split('.')
    node = config
    for name in path:
      node = node[name]
    node[leaf] = value
  return config


def small_fit_config(root, **values):
  """Image fitting on the generated scene with a small, fast model."""
  config = default.get_config()
  settings = {'data.root': root, 'data.scene': 'spheres', 'model.width': 64, 'model.depth': 2,
              'model.num_freqs': 6, 'train.steps': 60, 'train.batch_size': 1024, 'train.lr': 5e-3,
              'train.lr_decay_steps': 1000, 'train.log_every': 20, 'train.eval_every': 0,
              'train.checkpoint_every': 30, 'eval.chunk': 1000}
  settings.update(values)
  return override(config, **settings)


def small_nerf_config(root, **values):
  """NeRF (configs/lego.py with a small model and few samples) on the generated scene at 32x32."""
  settings = {'data.root': root, 'data.scene': 'spheres', 'data.input_ratio': 0.5,
              'data.batching': 'all_images', 'model.width': 64, 'model.depth': 4, 'model.skip': 2,
              'model.width_view': 32, 'model.num_freqs': 6, 'model.num_coarse': 24,
              'model.num_fine': 24, 'train.steps': 250, 'train.batch_size': 512, 'train.lr': 5e-3,
              'train.lr_decay_steps': 250, 'train.precrop_steps': 20, 'train.log_every': 50,
              'train.eval_every': 0, 'train.checkpoint_every': 250, 'eval.split': 'val',
              'eval.train_split': 'val', 'eval.train_views': (0, 1, 1), 'eval.chunk': 1024}
  settings.update(values)
  return override(lego.get_config(), **settings)


def train_on_a_fixed_batch(config, workdir):
  """Trains `config` in `workdir` and measures its loss on one fixed batch before and after.

  Returns (task, trained params, loss before, loss after).
  """
  import jax
  from nerf_jax import batching, tasks, train
  task = tasks.make_task(config)
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(1), 100, plan)
  loss = jax.jit(task.loss)  # eager, a sampler's loss takes tens of seconds
  before, _ = loss(train.create_train_state(config, task).variables, batch, 0)
  params = train.train_and_evaluate(config, workdir).variables
  after, _ = loss(params, batch, 0)
  return task, params, before, after


def save_old_layout(config, task, workdir, step, mesh=None):
  """A checkpoint of an occupancy run as written before the grid left the params: one tree of
  variables, the optimiser wrapped to give the grid zero updates (checkpoint._legacy_optimizer),
  arrays placed on `mesh` (default: every device) as training placed them. Returns (variables,
  opt_state) as saved (host copies)."""
  import orbax.checkpoint as ocp
  from nerf_jax import checkpoint, train
  state = train.create_train_state(config, task, mesh)
  variables = jax.tree_util.tree_map(lambda x: x + 0.5, state.variables)  # stays where the state is
  tx = checkpoint._legacy_optimizer(state.tx, variables)
  _, opt_state = tx.update(jax.tree_util.tree_map(jnp.ones_like, variables), tx.init(variables), variables)
  ckpts = checkpoint.Checkpoints(workdir, config)
  ckpts.check_config()
  ckpts.manager.save(step, args=ocp.args.StandardSave({'step': np.int32(step), 'params': variables,
                                                      'opt_state': opt_state, 'key': state.key}))
  ckpts.manager.wait_until_finished()
  ckpts.close()
  return jax.device_get(variables), jax.device_get(opt_state)
