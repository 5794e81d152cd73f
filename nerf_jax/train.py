"""The trainer shared by every task: state, one jitted step, the loop with checkpoints, logs and evaluation."""

import functools
import math
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
import flax
from flax.training import train_state

from nerf_jax import (batching, checkpoint, config_checks, evaluate, lpips, optim, parallel, summary, tasks,
                      workdir_lock)
from nerf_jax import progress as progress_lib
from nerf_jax.errors import CheckpointError, Interrupted, NonFiniteLossError


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the run's base PRNG key and the task's own state.

  params: {collection: tree}, what the optimiser trains ('params'; a camera model's 'camera');
  model_state: {collection: tree}, what the task keeps itself (an occupancy grid, Task.after_step);
  `variables` is both merged, what the task's functions take. A step's randomness is
  fold_in(key, step), so resuming needs only the step and this key.
  """
  key: jax.Array
  model_state: dict = flax.struct.field(default_factory=dict)

  @property
  def variables(self):
    return {**self.params, **self.model_state}


def create_train_state(config, task, mesh=None):
  """A fresh TrainState for `task` (Task.init_variables) with the optimiser of config.train
  (optim.make_optimizer, plus the task's own parameter groups), replicated over `mesh` (default: every
  device)."""
  mesh = parallel.make_mesh() if mesh is None else mesh
  init_key, run_key = jax.random.split(jax.random.PRNGKey(config.train.seed))
  # Jitted: op by op, a hash grid's or an SDF's initialisation took 8-13 s on 2 CPU cores, one compiled
  # call about 1 s. The same bits for every shipped config but the SDF's first layer (1 ulp: XLA fuses
  # its geometric initialisation's scaling).
  params, model_state = jax.jit(task.init_variables)(init_key)
  tx = optim.make_optimizer(config.train, task.optimizer_groups())
  state = TrainState.create(apply_fn=task.model.apply, params=params, tx=tx, key=run_key,
                            model_state=model_state)
  return parallel.put(jax.device_get(state), parallel.replicated(mesh))


def train_step(state, batch, *, loss_fn, microbatches=1, axis_name=None):
  """One optimisation step: (state, metrics) with metrics {'loss', **loss_fn's metrics}.

  loss_fn(variables, batch, step) -> (loss, metrics), a mean over the batch; pure, so the step can be
  jitted or mapped; it sees the state's step (the step being taken, from 0) and the state's params and
  model_state merged, differentiated in the params only. All of a step's
  randomness is in the batch (per ray), so splitting it, over devices or microbatches, changes
  nothing but the float summation order. microbatches > 1 splits the batch
  (leading axis) into that many equal parts and averages their gradients: the same update, but each
  part's activations are small enough to stay in the CPU's caches. axis_name: inside shard_map, the
  mesh axis over which gradients and metrics are averaged (each device holding an equal share).
  """
  grad_fn = jax.value_and_grad(lambda p, b: loss_fn({**p, **state.model_state}, b, state.step),
                               has_aux=True)
  params = state.params
  if axis_name is not None:
    # Mark the replicated parameters as per-device values: then each device's gradient is its own,
    # and the average below is the only reduction (differentiating the replicated value directly
    # would sum the devices' gradients implicitly, an update axis-size times too large).
    params = jax.lax.pcast(params, axis_name, to='varying')
  if microbatches == 1:
    (loss, aux), grads = grad_fn(params, batch)
  else:
    parts = jax.tree_util.tree_map(lambda x: x.reshape(microbatches, -1, *x.shape[1:]), batch)

    def accumulate(total, part):
      return jax.tree_util.tree_map(jnp.add, total, grad_fn(params, part)), None

    zeros = jax.tree_util.tree_map(
        jnp.zeros_like, jax.eval_shape(grad_fn, params, jax.tree_util.tree_map(lambda x: x[0], parts)))
    total, _ = jax.lax.scan(accumulate, zeros, parts)
    (loss, aux), grads = jax.tree_util.tree_map(lambda x: x / microbatches, total)
  if axis_name is not None:
    (loss, aux), grads = jax.lax.pmean(((loss, aux), grads), axis_name)
  return state.apply_gradients(grads=grads), {'loss': loss, **aux}


def make_train_iteration(task, plan, microbatches=1, mesh=None):
  """jit((state, data) -> (state, metrics)) over `mesh` (default: every device): draws the step's
  batch (batching.BatchPlan `plan`) on the devices, then train_step with each device on its slice.

  Every device draws the step's whole batch (index arithmetic and a gather, O(batch), well under 1% of
  the step) and keeps its slice: no communication, and the global batch is the same for any number of
  devices or processes. After the update, task.after_step updates the task's own state (an occupancy
  grid) from the same replicated inputs on every device: redundant work, but no communication. The state's buffers are donated: the old parameters and moments are dead after
  the step.
  """
  mesh = parallel.make_mesh() if mesh is None else mesh
  batching.check_sizes(mesh.size, batch_size=plan.batch_size, microbatches=microbatches,
                       pool=task.pool_size(plan))
  step_fn = functools.partial(train_step, loss_fn=task.loss, microbatches=microbatches,
                              axis_name=parallel.AXIS)

  def per_device(state, data):
    key = jax.random.fold_in(state.key, state.step)
    batch = task.sample_batch(data, key, state.step, plan)
    new_state, metrics = step_fn(state, parallel.local_slice(batch, mesh.size))
    # After the update, with the same key on every device: the task's own state stays replicated.
    variables = task.after_step(new_state.variables, state.step, jax.random.fold_in(key, 1))
    return new_state.replace(model_state={name: variables[name] for name in new_state.model_state}), metrics

  spec = jax.sharding.PartitionSpec()
  return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=(spec, spec)),
                 donate_argnums=0)


@jax.jit
def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def _check_finite(metrics, step, ckpts, params=None):
  """Raises NonFiniteLossError if a metric (or, when given, a parameter) is NaN or Inf, naming the
  checkpoint that stays the latest (saves are synchronous: none is half-written behind it)."""
  bad = [f'{name} is {float(value)}' for name, value in metrics.items() if not math.isfinite(float(value))]
  if params is not None and not bool(_all_finite(params)):
    bad.append('a parameter is not finite')
  if bad:
    latest = ckpts.latest_step()
    kept = f'checkpoint {latest} is kept' if latest is not None else 'no checkpoint was saved before it'
    raise NonFiniteLossError(
        f'{", ".join(bad)} at step {step}; training stopped without saving, and {kept}. Lower '
        f'train.lr, or check the data with --mode dataset.')


def default_workdir(config):
  return os.path.join('runs', config.name)


class _StopRequests:
  """Turns SIGINT and SIGTERM into a request that the loop honours after the current step.

  A second signal while the first is pending stops at once (the previous checkpoint stays intact).
  With several processes the request is agreed on by all of them each step, so every process stops at
  the same step and takes part in the same final save.
  """
  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    if self.signum is not None:
      raise KeyboardInterrupt(f'second {signal.Signals(signum).name}: stopping without saving')
    self.signum = signum

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def pending(self):
    """The signal to stop for (agreed by every process), or None."""
    if jax.process_count() == 1:
      return self.signum
    signums = multihost_utils.process_allgather(np.int32(self.signum or 0))
    return int(np.max(signums)) or None


def train_and_evaluate(config, workdir, mesh=None):
  """Trains `config` in `workdir`, resuming from its latest checkpoint; evaluates at the end.

  mesh: the devices to train on (default: every device of every process). Returns the final
  TrainState. Raises Interrupted after saving when SIGINT or SIGTERM arrives.
  """
  mesh = parallel.make_mesh() if mesh is None else mesh
  config_checks.validate(config, mesh.size)
  ckpts = checkpoint.Checkpoints(workdir, config)
  # One writer per workdir, from before the data is read or config.json written until the run ends,
  # however it ends (a second training refuses at once, not after loading its scene).
  lock = workdir_lock.WorkdirLock(ckpts.workdir, say=_print) if parallel.is_main_process() else None
  try:
    if lock is not None:
      lock.acquire()
    return _resume_and_train(config, ckpts, mesh)
  finally:
    ckpts.close()
    if lock is not None:
      lock.release()


def _resume_and_train(config, ckpts, mesh):
  """train_and_evaluate's work once the workdir's lock is held."""
  task = tasks.make_task(config)
  plan = batching.BatchPlan.from_config(config.train)
  iteration = make_train_iteration(task, plan, config.train.microbatches, mesh)
  evaluator = evaluate.Evaluator(task, config.eval.chunk, mesh,
                                microbatches=config.eval.microbatches)
  for change in ckpts.check_config():
    _print(f'Config changed since the run started (allowed): {change}')
  state = create_train_state(config, task, mesh)
  latest = ckpts.latest_step()
  if latest is not None:
    if not config.train.resume:
      raise CheckpointError(
          f'{ckpts.directory} already holds checkpoints (latest step {latest}) and train.resume is '
          f'False. Nothing was changed: pass a new --workdir, or drop --config.train.resume=False to '
          f'continue that run.')
    wanted = config.train.resume_step
    newer = [s for s in ckpts.steps() if wanted and s > wanted]
    if newer:
      raise CheckpointError(
          f'train.resume_step={wanted} but {ckpts.directory} holds newer steps {sorted(newer)}: training on '
          f'from {wanted} would collide with them. Move them out of the folder first, or train in a copy '
          f'of the workdir (--mode evaluate/render take train.resume_step as it is).')
    state, step = ckpts.restore(state, wanted or None, move_aside=True, say=_print)
    _print(f'Resumed from step {step} in {ckpts.directory}.')
  start, steps = int(state.step), config.train.steps
  if start >= steps:
    _print(f'Run in {ckpts.workdir} is already at step {start} >= train.steps={steps}: nothing to train. '
           f'Evaluate it with --mode evaluate, or raise --config.train.steps to train further.')
    return state

  viewer = None
  if config.train.viewer and parallel.is_main_process():
    from nerf_jax import viewer as viewer_lib  # the optional extra: imported only when asked for
    viewer = viewer_lib.Viewer(task, config.view, ckpts.workdir, config.render, mesh, training=True)
    _print(f'Viewer: {viewer.url} (it takes at most {1 - config.view.train_util:.0%} of the time).')
  writer = summary.Summary(ckpts.workdir)
  progress = progress_lib.Progress(steps, start, desc='train', enabled=parallel.is_main_process(),
                                   every_s=config.train.progress_every_s)
  try:
    state = _train_loop(config, task, plan, iteration, evaluator, state, ckpts, writer, progress, mesh,
                        viewer)
  except BaseException:
    writer.close()
    raise
  finally:  # whatever ends the loop, no file, thread or bar is left open (a run must exit, not hang)
    progress.close()
    ckpts.close()
    if viewer is not None:
      viewer.close()
  # The quick look used during training, on disk: the full protocol is --mode evaluate.
  _write_evaluation(evaluator, ckpts.workdir, state, config.eval.train_split, config.eval.train_views,
                    writer)
  writer.close()
  return state


def _train_loop(config, task, plan, iteration, evaluator, state, ckpts, writer, progress, mesh, viewer=None):
  """Steps from state.step to train.steps with logs, evaluations and checkpoints; returns the state.
  viewer: a viewer.Viewer given a chunk of rendering between steps (it only reads the variables)."""
  steps = config.train.steps
  schedule = optim.learning_rate_schedule(config.train)
  data = parallel.put(task.train_data(), parallel.replicated(mesh))
  last_time, last_step = time.perf_counter(), int(state.step)
  with _StopRequests() as stop:
    previous, warned = None, set()
    for step in range(int(state.step) + 1, steps + 1):
      state, metrics = iteration(state, data)
      # At most one step queued behind the running one: the devices never wait for Python, and the
      # queue of collectives stays short (an unbounded one deadlocked simulated CPU devices).
      jax.block_until_ready(previous)
      previous = metrics
      progress.update(1)
      if step % config.train.log_every == 0 or step == steps:
        metrics = jax.device_get(metrics)
        _check_finite(metrics, step, ckpts)
        now = time.perf_counter()
        rate = (step - last_step) / (now - last_time)
        last_time, last_step = now, step
        writer.scalars({f'train/{k}': v for k, v in metrics.items()}, step)
        writer.scalars({'train/lr': schedule(step - 1), 'train/steps_per_s': rate}, step)
        alarms = task.alarms(metrics, step, plan)
        writer.scalars({f'train/{name}': float(message is not None) for name, message in alarms.items()},
                       step)
        for name, message in alarms.items():
          if message is not None and name not in warned:  # each alarm once a run: no flood in the log
            warned.add(name)
            _print(f'\nWARNING: {message}')
        progress.note(loss=f'{metrics["loss"]:.4g}', psnr=f'{metrics.get("psnr", float("nan")):.2f}')
        if viewer is not None:
          viewer.set_stats(step, metrics)
      if viewer is not None:
        viewer.poll(state.variables, step)
      signum = stop.pending()
      if step % config.train.checkpoint_every == 0 or step == steps or signum:
        _check_finite(jax.device_get(metrics), step, ckpts, state.variables)  # never save NaN parameters
        ckpts.save(state)
      if signum:
        raise Interrupted(signum, step, ckpts.directory)
      if config.train.eval_every and step % config.train.eval_every == 0 and step != steps:
        result, images = evaluator.run(state.variables, config.eval.train_split, config.eval.train_views)
        _log_evaluation(writer, task, state.variables, result, images, step)
        last_time, last_step = time.perf_counter(), step  # steps/s counts training, not evaluation
  return state


def _log_evaluation(writer, task, params, result, images, step):
  """Scalars, the first view's images (gt | prediction and the task's extra maps) and, where the task
  has them, the histogram of its densities."""
  writer.scalars({f'eval/{k}': result[k] for k in ('psnr', 'ssim')}, step)
  for name, image in images.items():
    writer.image(f'eval/{name}', image, step)
  densities = task.densities(params)
  if densities is not None:
    writer.histogram('eval/density', densities, step)


def _print(message):
  if parallel.is_main_process():
    print(message, flush=True)


def _write_evaluation(evaluator, workdir, state, split, views, writer=None, strict=False):
  """Scores `state` on `views` of `split`, writes eval/<split>_step<N>/ and prints the figures. A
  prediction that is not finite is said instead of a NaN PSNR: a warning while training, a
  CheckpointError (the step, the views, the fix) where `strict` (--mode evaluate)."""
  step = int(state.step)
  out_dir = os.path.join(workdir, 'eval', f'{split}_step{step}')
  start = time.perf_counter()
  result, images = evaluator.run(state.variables, split, views, out_dir)
  seconds = time.perf_counter() - start
  if writer is not None:
    _log_evaluation(writer, evaluator.task, state.variables, result, images, step)
  lpips_text = f', LPIPS {result["lpips"]:.4f}' if 'lpips' in result else ''
  subset = (f' (a subset: views {list(views)} of {result["split_views"]}; all of them with '
            f'--config.eval.views="(0, -1, 1)")' if result['subset'] else '')
  broken = result['non_finite_views']
  if broken:
    shown = ', '.join(broken[:3]) + (', ...' if len(broken) > 3 else '')
    message = (f'The checkpoint of step {step} renders non-finite colours (NaN or inf) in {len(broken)} of '
               f'{result["num_views"]} view(s) of {split!r} ({shown}): its parameters have diverged, so '
               f'PSNR and SSIM mean nothing. Train again with a lower train.lr (or evaluate an earlier '
               f'checkpoint); metrics.json in {out_dir} lists the views.')
    if strict:
      raise CheckpointError(message)
    _print(f'Warning: {message}')
    return result
  # What the views were rendered with beyond their rays (a per-image appearance code), one line each.
  notes = ''.join(f'{name}: {text}\n' for name, text in evaluator.task.eval_notes(split).items())
  worst = result['worst_view']
  photo = f' ({worst["source"]})' if worst['source'] and worst['source'] != worst['name'] else ''
  spread = (f'; median {result["psnr_median"]:.2f} dB, worst view {worst["name"]}{photo} {worst["psnr"]:.2f} dB / '
            f'SSIM {worst["ssim"]:.4f}' if result['num_views'] > 1 else '')
  _print(f'Evaluation at step {step} on {result["num_views"]} view(s) of {split!r}{subset}: '
        f'PSNR {result["psnr"]:.2f} dB, SSIM {result["ssim"]:.4f}{lpips_text}{spread} ({seconds:.1f} s; '
        f'{result["seconds_per_image"]:.2f} s and {result["rays_per_second"]:.0f} rays/s per image).\n'
        f'{notes}Wrote {os.path.join(out_dir, "metrics.json")} and the images there.')
  return result


def load_state(config, task, workdir, mesh=None, required=True):
  """(TrainState, where from): the latest checkpoint in `workdir`, checked against `config`; without
  one, a CheckpointError when `required`, else the freshly initialised state. Creates nothing in
  `workdir` (a mistyped one stays absent)."""
  state = create_train_state(config, task, mesh)
  if not required and not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    return state, 'initialised (no checkpoint in the workdir)'
  ckpts = checkpoint.Checkpoints(workdir, config, create=False)
  try:
    if ckpts.latest_step() is None:
      if required:
        raise CheckpointError(
            f'No checkpoint in {ckpts.directory}: train first with the same --config and --workdir.')
      return state, 'initialised (no checkpoint in the workdir)'
    ckpts.check_config()
    # Read-only: a damaged step is named and skipped, not moved (a training beside it owns the folder).
    state, step = ckpts.restore(state, config.train.resume_step or None, say=_print)
    return state, f'checkpoint of step {step} in {ckpts.directory}'
  finally:
    ckpts.close()


def evaluate_checkpoint(config, workdir, mesh=None):
  """Evaluates the latest checkpoint in `workdir` on config.eval.split; returns the metrics dict."""
  mesh = parallel.make_mesh() if mesh is None else mesh
  config_checks.validate(config, mesh.size)
  checkpoint.require_run(workdir)  # before loading any data: a mistyped workdir fails at once
  task = tasks.make_task(config)
  state, _ = load_state(config, task, workdir, mesh)
  weights = None
  if config.eval.lpips_weights:
    weights = lpips.load_weights(config.eval.lpips_weights)
  else:
    _print('LPIPS: not computed (eval.lpips_weights is empty; nerf_jax downloads nothing: README, "LPIPS").')
  evaluator = evaluate.Evaluator(task, config.eval.chunk, mesh, weights, config.eval.microbatches)
  return _write_evaluation(evaluator, os.path.abspath(workdir), state, config.eval.split, config.eval.views,
                           strict=True)
