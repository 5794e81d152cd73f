"""Checkpoints (orbax CheckpointManager) and the run's config saved beside them.

A workdir holds one run: config.json (the config it was started with) and checkpoints/<step>/. Resuming
with a config that changes what the checkpoint means (task, model, data) is refused with the differing
keys listed; other changes (steps, intervals, evaluation) are allowed and reported.

Damaged checkpoints (a failing disk, a half-finished copy, a sync tool) are expected, not fatal: each
save lists its files with their sizes and CRC32s (FILES_MANIFEST), a restore checks them first and
names the first file that is missing, short or changed, and restore() falls back to the newest step
that restores, saying so in one line. A training (move_aside) moves a bad step to
checkpoints_damaged/<step>/ (never deletes it: it may be someone's only copy) so that its next save
does not collide with it; orbax's own error text goes to <workdir>/restore_errors.log, not the terminal.
"""

import json
import logging
import os
import shutil
import time
import traceback
import zlib

import jax
import optax
import orbax.checkpoint as ocp

from nerf_jax import plugins
from nerf_jax.errors import CheckpointError

# Config keys that may change between a run and its resumption: they do not change the parameters'
# shapes or what the data is, only how long and how verbosely the run goes on, and where. The state
# is replicated and the batches do not depend on the device count, so a run may resume on other devices.
# model.dtype changes only the products' precision (parameters are float32 either way): a float32 run
# may be evaluated or continued in bfloat16 and back. Loss terms change what the next steps optimise,
# not the state's shape: a regulariser may be switched on to fine-tune a run. (train.optimizer is not
# safe: clipping, another optimiser or parameter groups change the optimiser state's layout.) The
# plug-ins add their own (registry.Plugin.safe; safe_to_change() asks them when a run resumes, so a
# plug-in registered from a project's own code counts too).
SAFE_TO_CHANGE = ('name', 'data.root', 'train.steps', 'train.log_every', 'train.progress_every_s',
                  'train.eval_every', 'train.checkpoint_every', 'train.keep_checkpoints', 'train.resume',
                  'train.microbatches', 'train.viewer', 'view.', 'model.dtype', 'loss.', 'eval.', 'render.',
                  'mesh.', 'pointcloud.', 'distributed.')


def safe_to_change():
  """Every key prefix a resumed run may change: SAFE_TO_CHANGE and the registered plug-ins' safe keys."""
  return SAFE_TO_CHANGE + plugins.safe_keys()

# Shared keys added to the config after runs were saved without them, with the value that reproduces
# what those runs did: a saved config.json lacking one is read as holding this value, so older runs
# still resume (and a resume that sets another value is refused like any other change). A plug-in's
# keys are read as their defaults (plugins.resume_defaults): a plug-in that changes what a default
# means must give the new behaviour a new value.
ADDED_KEYS = {
    'data.format': 'blender',
    'model.field': 'mlp', 'model.encoding': 'frequency', 'model.dir_encoding': 'frequency',
    'loss.terms': [],
    'train.optimizer.name': 'adam', 'train.optimizer.b1': 0.9, 'train.optimizer.b2': 0.999,
    'train.optimizer.eps': 1e-8, 'train.optimizer.clip_norm': 0.0, 'train.optimizer.clip_value': 0.0,
    'train.optimizer.weight_decay': 0.0, 'train.optimizer.groups': [], 'train.progress_every_s': 30.0,
    'data.bounds': 'config', 'data.factor': 1, 'data.llffhold': 8, 'data.ndc': False, 'data.lindisp': False,
    'data.random_bkgd': False, 'train.optimizer.weight_decay_pattern': '', 'model.sampler': 'hierarchical',
    'model.box': [-1.5, 1.5], 'model.camera': 'fixed', 'train.resume_step': 0,
}


def resume_defaults():
  """{key: value} a saved config lacking the key is read as holding: the plug-ins' defaults, then
  ADDED_KEYS."""
  return {**plugins.resume_defaults(), **ADDED_KEYS}


def flatten(tree, prefix=''):
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def config_differences(saved, current):
  """Keys whose values differ between two config dicts: {key: (saved, current)}; a key of
  resume_defaults() missing from the saved config counts as its value there."""
  a, b = {**resume_defaults(), **flatten(saved)}, flatten(current)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _as_plain_dict(config):
  # A JSON round trip turns tuples into lists, so a saved config compares equal to the same config.
  return json.loads(config.to_json())


def require_run(workdir):
  """Raises CheckpointError unless `workdir` holds a run's checkpoints folder (creates nothing)."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  if not os.path.isdir(directory):
    raise CheckpointError(f'No checkpoint in {directory}: the folder does not exist. Check --workdir (it '
                          f'must be the training run\'s), or train first.')


class Checkpoints:
  """Saves and restores a run's TrainState under workdir/checkpoints.

  create=False opens an existing run only (evaluation, rendering): a workdir that does not exist is a
  CheckpointError, and nothing is created there.
  """

  def __init__(self, workdir, config, create=True):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    self.config = config
    if not create:
      require_run(workdir)
    else:
      try:
        os.makedirs(self.workdir, exist_ok=True)
      except OSError as e:
        raise CheckpointError(f'Cannot create the workdir {self.workdir!r} ({e.strerror}); choose a '
                              f'writable --workdir.') from e
      if not os.access(self.workdir, os.W_OK):
        raise CheckpointError(f'The workdir {self.workdir!r} is not writable; choose another --workdir.')
    # Saves are synchronous: a failed write surfaces at once, naming its own step, and no save is
    # still in flight when an error or a signal ends the run (an asynchronous one that failed left a
    # background thread that kept the process alive, and one in flight at exit was lost). The state is
    # small (the paper model's parameters and Adam moments: 7 MB), so the step barely waits.
    options = ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints, create=create,
                                           enable_async_checkpointing=False)
    # A handler named up front, so item_metadata can tell a checkpoint's layout before restoring it.
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self):
    return self.manager.latest_step()

  def steps(self):
    """Every saved step, newest first."""
    return sorted(self.manager.all_steps(), reverse=True)

  def check_config(self):
    """Writes config.json for a new run; for an existing one, refuses incompatible changes.

    Returns the list of allowed changes as 'key: old -> new' strings.
    """
    path = os.path.join(self.workdir, 'config.json')
    current = _as_plain_dict(self.config)
    if not os.path.exists(path):
      _write_json(path, current)
      return []
    with open(path) as f:
      saved = json.load(f)
    differences = config_differences(saved, current)
    unsafe = {k: v for k, v in differences.items() if not k.startswith(safe_to_change())}
    if unsafe and self.latest_step() is not None:
      listing = '\n'.join(f'  {k}: {old!r} (saved) != {new!r} (now)' for k, (old, new) in unsafe.items())
      raise CheckpointError(
          f'The checkpoints in {self.directory} were made with a different config:\n{listing}\n'
          f'Use the same settings to resume, or a new --workdir to start a new run.')
    if unsafe:  # config.json of a run that never saved a checkpoint: nothing to protect.
      _write_json(path, current)
      return []
    return [f'{k}: {old!r} -> {new!r}' for k, (old, new) in differences.items()]

  def restore(self, state, step=None, *, move_aside=False, say=print):
    """(`state` with its fields replaced by a checkpoint, the step it came from).

    step: that checkpoint (train.resume_step), which must restore; None (or 0): the newest that
    restores, each newer one that does not named by `say` in one line (the file at fault and why),
    and with move_aside (a training, which holds the workdir's lock) moved to checkpoints_damaged/.
    No step that restores: a CheckpointError listing them.
    """
    steps = self.steps()
    if not steps:
      raise CheckpointError(f'No checkpoint in {self.directory}: train first (same --config and '
                            f'--workdir, --mode train).')
    if step:
      if step not in steps:
        raise CheckpointError(f'No checkpoint of step {step} in {self.directory} (train.resume_step): it '
                              f'holds steps {sorted(steps)}. Pick one of them, or 0 for the newest.')
      try:
        return self._restore(state, step), step
      except _Damaged as e:
        raise CheckpointError(f'Checkpoint {step} in {self.directory} cannot be read: {e}. Pick another '
                              f'train.resume_step ({sorted(s for s in steps if s != step)}), or 0 for the '
                              f'newest that restores.') from None
    failures = []
    for candidate in steps:
      try:
        restored = self._restore(state, candidate)
      except _Damaged as e:
        failures.append(f'{candidate}: {e}')
        where = self._move_aside(candidate) if move_aside else 'left in place'
        older = [s for s in steps if s < candidate]
        then = f'trying step {older[0]}' if older else 'no older step'
        say(f'Checkpoint {candidate} in {self.directory} cannot be read ({e}); {where}; {then} '
            f'(details: {self.log_path}).')
        continue
      return restored, candidate
    raise CheckpointError(
        f'No checkpoint in {self.directory} can be read ({"; ".join(failures)}). '
        + ('They were moved to checkpoints_damaged/; the same command now starts the run anew.'
           if move_aside else 'Nothing was changed; details in ' + self.log_path + '.'))

  @property
  def log_path(self):
    return os.path.join(self.workdir, RESTORE_LOG)

  def _restore(self, state, step):
    """`state` from checkpoint `step`; a _Damaged naming the fault where its files or orbax fail."""
    problem = verify_files(os.path.join(self.directory, str(step)))
    if problem:
      self._log(step, problem)
      raise _Damaged(problem)
    absl_logger = logging.getLogger('absl')
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)  # orbax logs each failed read: the one-line reason says it
    try:
      saved = self.manager.item_metadata(step)
      if 'model_state' not in saved:  # saved before the state left the params: read it as it was written
        return _from_single_tree(state, self.manager.restore(
            step, args=ocp.args.StandardRestore(_single_tree(state))))
      restored = self.manager.restore(step, args=ocp.args.StandardRestore(_savable(state)))
      return state.replace(**restored)
    except Exception as e:  # noqa: BLE001 (TensorStore, JSON, zarr: each damaged file fails its own way)
      self._log(step, traceback.format_exc())
      root = e
      while root.__cause__ is not None:  # TensorStore's own words are in the innermost cause
        root = root.__cause__
      first = ' '.join(str(root).split())
      raise _Damaged(f'orbax: {first[:200]}{"..." if len(first) > 200 else ""}') from e
    finally:
      absl_logger.setLevel(level)

  def _log(self, step, text):
    try:
      with open(self.log_path, 'a') as f:
        f.write(f'--- {time.strftime("%Y-%m-%d %H:%M:%S")} checkpoint {step} in {self.directory}\n{text}\n')
    except OSError:
      pass  # a read-only workdir: the one-line reason is all there is

  def _move_aside(self, step):
    """Moves checkpoint `step` to checkpoints_damaged/<step>[.<n>]/ and forgets it; says where."""
    target = os.path.join(self.workdir, DAMAGED_DIR, str(step))
    n = 1
    while os.path.exists(target):
      target = os.path.join(self.workdir, DAMAGED_DIR, f'{step}.{n}')
      n += 1
    try:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), target)
    except OSError as e:
      raise CheckpointError(f'Checkpoint {step} in {self.directory} cannot be read, and moving it aside to '
                            f'{target} failed ({e.strerror}): move or remove it by hand, then resume.') from e
    self.manager.reload()
    return f'moved to {target}'

  def save(self, state):
    """Saves `state` at its step; returns once it is complete on disk.

    orbax writes into a temporary folder and renames it when complete, so a process killed mid-save
    leaves the previous checkpoint as the latest one. A write that fails is a CheckpointError naming
    the step and the checkpoint that is still the latest.
    """
    step = int(state.step)
    if step in self.manager.all_steps():
      return
    try:
      self.manager.save(step, args=ocp.args.StandardSave(_savable(state)))
      self.manager.wait_until_finished()
      if jax.process_index() == 0:
        try:
          write_manifest(os.path.join(self.directory, str(step)))
        except OSError:  # the checkpoint is complete: without its list, orbax alone checks it on restore
          pass
    except Exception as e:  # noqa: BLE001 (disk full, permissions, a vanished mount: orbax wraps some)
      self.manager.reload()  # forget the step that was not written
      reason = e.strerror if isinstance(e, OSError) and e.strerror else f'{type(e).__name__}: {e}'
      raise CheckpointError(
          f'Could not write checkpoint {step} in {self.directory} ({reason}). The latest complete '
          f'checkpoint, step {self.latest_step()}, is kept; free space or fix the folder, then run the '
          f'same command to resume from it.') from e

  def close(self):
    self.manager.close()


RESTORE_LOG = 'restore_errors.log'  # orbax's own text of each failed restore, in the workdir
DAMAGED_DIR = 'checkpoints_damaged'  # where a training moves a step that cannot be read
FILES_MANIFEST = 'nerf_jax_files.json'  # in each step's folder: {relative path: [bytes, crc32]}


class _Damaged(Exception):
  """A checkpoint that cannot be read; the message names the file and why, in one line."""


def _crc32(path):
  crc = 0
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 22), b''):
      crc = zlib.crc32(block, crc)
  return crc


def write_manifest(step_dir):
  """Lists every file of a finished checkpoint with its size and CRC32 (FILES_MANIFEST), written in
  one rename: a checkpoint killed before it has none and is checked by orbax alone, as older ones are."""
  files = {}
  for parent, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(parent, name)
      relative = os.path.relpath(path, step_dir)
      if relative != FILES_MANIFEST:
        files[relative] = [os.path.getsize(path), _crc32(path)]
  _write_json(os.path.join(step_dir, FILES_MANIFEST), files)


def verify_files(step_dir):
  """None where every file FILES_MANIFEST lists is there with its size and CRC32 (or there is no
  manifest); else the first fault, in words: 'file F is missing' and the like."""
  try:
    with open(os.path.join(step_dir, FILES_MANIFEST)) as f:
      files = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return f'its file list {FILES_MANIFEST} is garbled'
  for relative, (size, crc) in sorted(files.items()):
    path = os.path.join(step_dir, relative)
    if not os.path.isfile(path):
      return f'file {relative} is missing'
    actual = os.path.getsize(path)
    if actual != size:
      return f'file {relative} is {actual:,} bytes; it was saved with {size:,}'
    if _crc32(path) != crc:
      return f'file {relative} has changed since it was saved (CRC32 differs)'
  return None


def _write_json(path, value):
  """Writes `value` to `path` in one rename, from process 0 only: no process reads a partial file."""
  if jax.process_index() != 0:
    return
  with open(path + '.tmp', 'w') as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)


def saved_value(workdir, key):
  """The value of dotted `key` in the config.json `workdir`'s run started with, or None (no run there,
  or a config without the key)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return flatten(json.load(f)).get(key)


def _savable(state):
  """The parts of a TrainState that a checkpoint holds (apply_fn and tx are code, not data)."""
  return {'step': state.step, 'params': state.params, 'model_state': state.model_state,
          'opt_state': state.opt_state, 'key': state.key}


# Checkpoints written before 2026-12 (runs of lego_fast_cpu and every occupancy config among them) hold
# one tree of variables as 'params', the task's own state included, with the optimiser wrapped so that
# state took zero updates and no moments. They are read into that layout and moved into today's.


def _legacy_optimizer(tx, variables):
  """The optimiser those checkpoints were written with: `tx` on 'params', every other collection zero."""
  labels = {name: 'params' if name == 'params' else 'state' for name in variables}
  return optax.multi_transform({'params': tx, 'state': optax.set_to_zero()}, labels)


def _single_tree(state):
  """The restore target of an old checkpoint for `state`'s run: variables in one tree."""
  variables = {**state.params, **state.model_state}
  opt_state = state.opt_state
  if state.model_state:
    # Abstract leaves placed as the state's are (replicated on this run's devices): without a sharding,
    # orbax would place them as they were saved and refuse a run saved on another number of devices.
    sharding = jax.tree_util.tree_leaves(state.params)[0].sharding
    opt_state = jax.tree_util.tree_map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        jax.eval_shape(_legacy_optimizer(state.tx, variables).init, variables))
  return {'step': state.step, 'params': variables, 'opt_state': opt_state, 'key': state.key}


def _from_single_tree(state, restored):
  """`state` with an old checkpoint's contents (_single_tree's layout) moved into today's layout."""
  variables, opt_state = restored['params'], restored['opt_state']
  if state.model_state:
    # The moments of the trained collection: multi_transform's 'params' part, whose masked-out
    # entries hold no leaves, so its leaves are those of tx.init(params), in the same order.
    leaves = jax.tree_util.tree_leaves(opt_state.inner_states['params'].inner_state)
    opt_state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state.opt_state), leaves)
  return state.replace(step=restored['step'], key=restored['key'], opt_state=opt_state,
                       params={name: variables[name] for name in state.params},
                       model_state={name: variables[name] for name in state.model_state})
