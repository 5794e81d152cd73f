"""The optimiser from config.train: an optax chain built in one function.

  [clip by global norm] [clip by value] -> OPTIMIZERS[train.optimizer.name] (Adam by default)
  -> [decoupled weight decay] -> learning rate (exponential decay; per parameter group if asked, with
  its own scale and warm-up)

With no clipping, decay or groups the chain is optax.adam's own (scale_by_adam, then the learning
rate), so checkpoints of runs made before the optimiser was configurable restore unchanged.
"""

import re

import jax
import jax.numpy as jnp
import optax

from nerf_jax.registry import Registry

# name -> build(optimizer_config) -> the gradient transformation before the learning rate.
OPTIMIZERS = Registry('optimizer', 'train.optimizer.name')
OPTIMIZERS.register('adam', lambda c: optax.scale_by_adam(b1=c.b1, b2=c.b2, eps=c.eps))


def learning_rate_schedule(train_config):
  """lr * decay_rate ** (step / decay_steps): NeRF's continuous exponential decay."""
  return optax.exponential_decay(init_value=train_config.lr,
                                 transition_steps=train_config.lr_decay_steps,
                                 decay_rate=train_config.lr_decay_rate)


def group_schedule(schedule, scale, warmup_steps=0):
  """A parameter group's learning rate: schedule(step) * scale, ramped linearly from 0 over the first
  warmup_steps steps (0: no ramp). step counts the updates from 0, so the first update of a group
  with a warm-up is zero."""
  if not warmup_steps:
    return lambda step: scale * schedule(step)
  return lambda step: scale * jnp.minimum(step / warmup_steps, 1.0) * schedule(step)


def parameter_path(path):
  """'coarse/trunk_0/kernel' from a jax.tree_util key path (dict keys joined by '/')."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', k))) for k in path)


def group_labels(params, groups):
  """Each parameter's group: the first of `groups` ((regex, lr scale[, warm-up steps])) whose regex is
  found in its path ('params/coarse/trunk_0/kernel'), else 'default'. Returns a pytree of labels like
  params."""
  def label(path, _):
    name = parameter_path(path)
    for i, group in enumerate(groups):
      if re.search(group[0], name):
        return f'group_{i}'
    return 'default'
  return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(train_config, extra_groups=()):
  """The optax GradientTransformation train.optimizer describes, on train.lr's decaying schedule.

  train.optimizer keys: name (OPTIMIZERS), b1, b2, eps (Adam's), clip_norm and clip_value (0: off),
  weight_decay (decoupled, AdamW-style; 0: off) on the parameters whose path matches the regex
  weight_decay_pattern (empty: all), groups: ((regex, lr scale[, warm-up steps]), ...) giving the
  parameters whose path matches a regex their own learning rate (group_schedule: schedule x scale,
  ramped from 0 over the warm-up steps where given), e.g. (('encoding', 10.0),) for a grid's tables at
  ten times an MLP's rate. extra_groups: more such entries, a task's own (Task.optimizer_groups: a camera
  model's rate and warm-up), matched before the config's, whose broad patterns would otherwise take
  them (the first match decides).
  """
  c = train_config.optimizer  # its values' ranges are checked by config_checks.validate
  groups = tuple(tuple(g) for g in extra_groups) + tuple(tuple(g) for g in c.groups)
  schedule = learning_rate_schedule(train_config)
  parts = []
  if c.clip_norm:
    parts.append(optax.clip_by_global_norm(c.clip_norm))
  if c.clip_value:
    parts.append(optax.clip(c.clip_value))
  parts.append(OPTIMIZERS.get(c.name)(c))
  if c.weight_decay:
    mask = None
    if c.weight_decay_pattern:  # only the parameters whose path matches (instant-NGP: the MLPs')
      mask = lambda params: jax.tree_util.tree_map_with_path(
          lambda path, _: re.search(c.weight_decay_pattern, parameter_path(path)) is not None, params)
    parts.append(optax.add_decayed_weights(c.weight_decay, mask=mask))
  if groups:
    rates = {'default': optax.scale_by_learning_rate(schedule)}
    for i, group in enumerate(groups):
      rates[f'group_{i}'] = optax.scale_by_learning_rate(group_schedule(schedule, *group[1:]))
    parts.append(optax.multi_transform(rates, lambda params: group_labels(params, groups)))
  else:
    parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)

