"""The trainer shared by every task: state, one jitted step, the loop with checkpoints, logs and evaluation."""

import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from tqdm import tqdm

from nerf_jax import checkpoint, evaluate, summary, tasks


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the run's base PRNG key.

  A step's randomness is fold_in(key, step), so resuming needs only the step and this key.
  """
  key: jax.Array


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; training stopped without saving the bad parameters."""


def learning_rate_schedule(train_config):
  """lr * decay_rate ** (step / decay_steps): NeRF's continuous exponential decay."""
  return optax.exponential_decay(init_value=train_config.lr,
                                 transition_steps=train_config.lr_decay_steps,
                                 decay_rate=train_config.lr_decay_rate)


def create_train_state(config, task):
  """A fresh TrainState for `task` with Adam on the decaying learning rate."""
  init_key, run_key = jax.random.split(jax.random.PRNGKey(config.train.seed))
  params = task.model.init(init_key, task.dummy_inputs())
  tx = optax.adam(learning_rate_schedule(config.train))
  return TrainState.create(apply_fn=task.model.apply, params=params, tx=tx, key=run_key)


def train_step(state, batch, key, *, loss_fn, microbatches=1):
  """One optimisation step: (state, metrics) with metrics {'loss', **loss_fn's metrics}.

  loss_fn(params, batch, key) -> (loss, metrics), a mean over the batch; pure, so the step can be
  jitted or mapped. microbatches > 1 splits the batch (leading axis) into that many equal parts and
  averages their gradients: the same update, but each part's activations are small enough to stay
  in the CPU's caches.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if microbatches == 1:
    (loss, aux), grads = grad_fn(state.params, batch, key)
    return state.apply_gradients(grads=grads), {'loss': loss, **aux}
  parts = jax.tree_util.tree_map(lambda x: x.reshape(microbatches, -1, *x.shape[1:]), batch)

  def accumulate(total, part_and_key):
    part, part_key = part_and_key
    value, grads = grad_fn(state.params, part, part_key)
    return jax.tree_util.tree_map(jnp.add, total, (value, grads)), None

  zeros = jax.tree_util.tree_map(
      jnp.zeros_like, jax.eval_shape(grad_fn, state.params, jax.tree_util.tree_map(lambda x: x[0], parts),
                                     key))
  (value, grads), _ = jax.lax.scan(accumulate, zeros, (parts, jax.random.split(key, microbatches)))
  (loss, aux), grads = jax.tree_util.tree_map(lambda x: x / microbatches, (value, grads))
  return state.apply_gradients(grads=grads), {'loss': loss, **aux}


def make_train_iteration(task, microbatches=1):
  """jit((state, data) -> (state, metrics)): draws the step's batch on the device, then train_step.

  The state's buffers are donated: the old parameters and optimiser moments are dead after the step.
  """
  step_fn = functools.partial(train_step, loss_fn=task.loss, microbatches=microbatches)

  @functools.partial(jax.jit, donate_argnums=0)
  def iteration(state, data):
    batch_key, step_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    batch = task.sample_batch(data, batch_key, state.step)
    return step_fn(state, batch, step_key)

  return iteration


@jax.jit
def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def _check_finite(metrics, step, params=None):
  """Raises NonFiniteLossError if a metric (or, when given, a parameter) is NaN or Inf."""
  bad = [f'{name} is {float(value)}' for name, value in metrics.items() if not math.isfinite(float(value))]
  if params is not None and not bool(_all_finite(params)):
    bad.append('a parameter is not finite')
  if bad:
    raise NonFiniteLossError(
        f'{", ".join(bad)} at step {step}; training stopped without saving, and the last checkpoint '
        f'(before this step) is kept. Lower train.lr or check the data.')


def default_workdir(config):
  return os.path.join('runs', config.name)


def train_and_evaluate(config, workdir):
  """Trains `config` in `workdir`, resuming from its latest checkpoint; evaluates at the end.

  Returns the final TrainState.
  """
  task = tasks.make_task(config)
  ckpts = checkpoint.Checkpoints(workdir, config)
  for change in ckpts.check_config():
    print(f'Config changed since the run started (allowed): {change}')
  state = create_train_state(config, task)
  latest = ckpts.latest_step()
  if latest is not None:
    if not config.train.resume:
      raise checkpoint.CheckpointError(
          f'{ckpts.directory} already holds checkpoints (latest step {latest}) and train.resume is '
          f'False. Nothing was changed: pass a new --workdir, or drop --config.train.resume=False to '
          f'continue that run.')
    state = ckpts.restore(state, latest)
    print(f'Resumed from step {latest} in {ckpts.directory}.')
  start = int(state.step)
  steps = config.train.steps
  if start >= steps:
    print(f'Run in {ckpts.workdir} is already at step {start} >= train.steps={steps}: nothing to train. '
          f'Evaluate it with --mode evaluate, or raise --config.train.steps to train further.')
    ckpts.close()
    return state

  writer = summary.Summary(ckpts.workdir)
  evaluator = evaluate.Evaluator(task, config.eval.chunk)
  schedule = learning_rate_schedule(config.train)
  data = jax.device_put(task.train_data())
  iteration = make_train_iteration(task, config.train.microbatches)
  bar = tqdm(total=steps, initial=start, desc='train', unit='step', dynamic_ncols=True)
  last_time, last_step = time.perf_counter(), start
  for step in range(start + 1, steps + 1):
    state, metrics = iteration(state, data)
    bar.update(1)
    if step % config.train.log_every == 0 or step == steps:
      metrics = jax.device_get(metrics)
      _check_finite(metrics, step)
      now = time.perf_counter()
      rate = (step - last_step) / (now - last_time)
      last_time, last_step = now, step
      writer.scalars({f'train/{k}': v for k, v in metrics.items()}, step)
      writer.scalars({'train/lr': schedule(step - 1), 'train/steps_per_s': rate}, step)
      bar.set_postfix(loss=f'{metrics["loss"]:.4g}', psnr=f'{metrics.get("psnr", float("nan")):.2f}')
    if step % config.train.checkpoint_every == 0 or step == steps:
      _check_finite(jax.device_get(metrics), step, state.params)  # never save NaN parameters
      ckpts.save(state)
    if config.train.eval_every and step % config.train.eval_every == 0 and step != steps:
      result, panel = evaluator.run(state.params, config.eval.train_split, config.eval.train_views)
      writer.scalars({f'eval/{k}': result[k] for k in ('psnr', 'ssim')}, step)
      writer.image('eval/gt_pred', panel, step)
      last_time, last_step = time.perf_counter(), step  # steps/s counts training, not evaluation
  bar.close()
  ckpts.wait()
  ckpts.close()
  # The quick look used during training, on disk: the full protocol is --mode evaluate.
  _write_evaluation(evaluator, ckpts.workdir, state, config.eval.train_split, config.eval.train_views,
                    writer)
  writer.close()
  return state


def _write_evaluation(evaluator, workdir, state, split, views, writer=None):
  step = int(state.step)
  out_dir = os.path.join(workdir, 'eval', f'{split}_step{step}')
  start = time.perf_counter()
  result, panel = evaluator.run(state.params, split, views, out_dir)
  seconds = time.perf_counter() - start
  if writer is not None:
    writer.scalars({f'eval/{k}': result[k] for k in ('psnr', 'ssim')}, step)
    writer.image('eval/gt_pred', panel, step)
  subset = (f' (a subset: views {list(views)} of {result["split_views"]}; all of them with '
            f'--config.eval.views="(0, -1, 1)")' if result['subset'] else '')
  print(f'Evaluation at step {step} on {result["num_views"]} view(s) of {split!r}{subset}: '
        f'PSNR {result["psnr"]:.2f} dB, SSIM {result["ssim"]:.4f} ({seconds:.1f} s).\n'
        f'Wrote {os.path.join(out_dir, "metrics.json")} and the images there.')
  return result


def evaluate_checkpoint(config, workdir):
  """Evaluates the latest checkpoint in `workdir` on config.eval.split; returns the metrics dict."""
  task = tasks.make_task(config)
  ckpts = checkpoint.Checkpoints(workdir, config)
  if ckpts.latest_step() is None:
    ckpts.close()
    raise checkpoint.CheckpointError(
        f'No checkpoint in {ckpts.directory}: train first with the same --config and --workdir.')
  ckpts.check_config()
  state = ckpts.restore(create_train_state(config, task))
  ckpts.close()
  evaluator = evaluate.Evaluator(task, config.eval.chunk)
  return _write_evaluation(evaluator, ckpts.workdir, state, config.eval.split, config.eval.views)
