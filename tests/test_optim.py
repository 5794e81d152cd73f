"""The optimiser from the config: Adam's keys, clipping, weight decay, parameter groups, old checkpoints."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from nerf_jax import checkpoint, config_checks, errors, optim, tasks, train
from tests.conftest import override, small_fit_config

PARAMS = {'params': {'encoding': {'table': jnp.ones((4, 2))}, 'Dense_0': {'kernel': jnp.ones((2, 3))}}}


def _train_config(**values):
  return override(default.get_config(), **{f'train.{k}': v for k, v in values.items()}).train


def _update(tx, grads, params=PARAMS):
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


def test_default_is_optax_adam_step_for_step():
  config = _train_config(lr=1e-2, lr_decay_steps=10)
  ours, reference = optim.make_optimizer(config), optax.adam(optim.learning_rate_schedule(config))
  grads = jax.tree_util.tree_map(lambda x: jnp.arange(x.size, dtype=jnp.float32).reshape(x.shape), PARAMS)
  state_a, state_b = ours.init(PARAMS), reference.init(PARAMS)
  # The same state layout (so checkpoints of runs from before the optimiser was configurable restore)...
  assert jax.tree_util.tree_structure(state_a) == jax.tree_util.tree_structure(state_b)
  for _ in range(3):  # ... and the same updates.
    a, state_a = ours.update(grads, state_a, PARAMS)
    b, state_b = reference.update(grads, state_b, PARAMS)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
      np.testing.assert_allclose(x, y, rtol=1e-6)


def test_betas_eps_clipping_and_weight_decay_reach_the_update():
  grads = jax.tree_util.tree_map(lambda x: 100.0 * jnp.ones_like(x), PARAMS)
  plain = _update(optim.make_optimizer(_train_config(lr=1.0)), grads)
  # Adam's first update is lr * g / (|g| + eps): about 1 for any gradient; a huge eps shrinks it.
  np.testing.assert_allclose(plain['params']['encoding']['table'], -1.0, rtol=1e-5)
  tiny = _update(optim.make_optimizer(_train_config(lr=1.0, **{'optimizer.eps': 1e4})), grads)
  assert float(jnp.abs(tiny['params']['encoding']['table']).max()) < 0.02
  # Clipping acts before Adam: Adam's first moment after one step is (1 - b1) x the clipped gradient.
  for key, value, norm in (('clip_norm', 1.0, 1.0), ('clip_value', 0.5, 0.5 * np.sqrt(14))):
    tx = optim.make_optimizer(_train_config(**{f'optimizer.{key}': value}))
    _, state = tx.update(grads, tx.init(PARAMS), PARAMS)
    mu = state[1].mu  # (clip, adam, learning rate)
    assert float(optax.tree.norm(mu)) == pytest.approx(0.1 * norm, rel=1e-5), key
  # Decoupled weight decay adds lr * wd * param to the update.
  decayed = _update(optim.make_optimizer(_train_config(lr=1.0, **{'optimizer.weight_decay': 0.5})), grads)
  np.testing.assert_allclose(decayed['params']['encoding']['table'] - plain['params']['encoding']['table'],
                             -0.5, rtol=1e-5)


def test_parameter_groups_get_their_own_learning_rate():
  config = _train_config(lr=1e-2, **{'optimizer.groups': (('encoding', 10.0),)})
  labels = optim.group_labels(PARAMS, (('encoding', 10.0),))
  assert labels == {'params': {'encoding': {'table': 'group_0'}, 'Dense_0': {'kernel': 'default'}}}
  grads = jax.tree_util.tree_map(jnp.ones_like, PARAMS)
  updates = _update(optim.make_optimizer(config), grads)
  np.testing.assert_allclose(updates['params']['encoding']['table'], -0.1, rtol=1e-4)
  np.testing.assert_allclose(updates['params']['Dense_0']['kernel'], -0.01, rtol=1e-4)


@pytest.mark.parametrize('values, message', [
    ({'optimizer.name': 'adamm'}, r"train.optimizer.name='adamm' must be one of \['adam'\]"),
    ({'optimizer.clip_norm': -1.0}, r'train.optimizer.clip_norm=-1.0 must be >= 0'),
    ({'optimizer.b2': 1.0}, r'train.optimizer.b2=1.0 must be in \[0, 1\)'),
    ({'optimizer.groups': (('(', 2.0),)}, 'not a regular expression'),
    ({'optimizer.groups': (('encoding',),)}, r'each entry is \(regex, lr scale > 0\)'),
])
def test_bad_optimizer_settings_are_config_errors(values, message):
  config = override(default.get_config(), **{f'train.{k}': v for k, v in values.items()})
  with pytest.raises(errors.ConfigError, match=message):
    config_checks.validate(config)
  with pytest.raises(errors.ConfigError, match="Unknown optimizer 'adamm'"):
    optim.make_optimizer(_train_config(**{'optimizer.name': 'adamm'}))


def test_a_checkpoint_of_plain_adam_resumes(spheres_root, tmp_path):
  # A run saved before train.optimizer existed: its state came from optax.adam and its config.json
  # has no optimizer, format, field or loss keys. It must resume, and continue exactly.
  config = small_fit_config(spheres_root, **{'train.steps': 20, 'train.checkpoint_every': 10})
  task = tasks.make_task(config)
  old = train.create_train_state(config, task)
  old = old.replace(tx=optax.adam(optim.learning_rate_schedule(config.train)),
                    opt_state=optax.adam(optim.learning_rate_schedule(config.train)).init(old.params))
  workdir = str(tmp_path)
  ckpts = checkpoint.Checkpoints(workdir, config)
  ckpts.check_config()
  ckpts.save(old)
  ckpts.close()
  path = os.path.join(workdir, 'config.json')
  with open(path) as f:
    saved = json.load(f)
  del saved['train']['optimizer'], saved['data']['format'], saved['loss']
  for key in ('field', 'encoding', 'dir_encoding'):
    del saved['model'][key]
  with open(path, 'w') as f:
    json.dump(saved, f)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 20
  # A resume that changes what the missing keys meant is still refused.
  with pytest.raises(errors.CheckpointError, match=r"train.optimizer.b1: 0.9 \(saved\) != 0.5"):
    train.train_and_evaluate(override(config, **{'train.optimizer.b1': 0.5, 'train.steps': 30}), workdir)
