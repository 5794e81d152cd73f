import json
import os

import jax
import numpy as np
import pytest

from nerf_jax import batching, errors, tasks, train
from tests.conftest import small_fit_config, small_nerf_config


def _params(state):
  return jax.tree_util.tree_leaves(jax.device_get(state.params))


def test_short_fit_raises_psnr(spheres_root, tmp_path):
  config = small_fit_config(spheres_root, **{'train.steps': 150})
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  before = train.evaluate.Evaluator(task, 1000).run(state.variables, 'train')[0]['psnr']
  state = train.train_and_evaluate(config, str(tmp_path / 'run'))
  with open(tmp_path / 'run' / 'eval' / 'train_step150' / 'metrics.json') as f:
    after = json.load(f)['psnr']
  assert int(state.step) == 150
  assert after > before + 5.0, (before, after)


def test_resume_matches_an_uninterrupted_run(spheres_root, tmp_path):
  straight = train.train_and_evaluate(small_fit_config(spheres_root), str(tmp_path / 'straight'))
  # The same run stopped at step 30 (its first checkpoint), then started again with the full length.
  train.train_and_evaluate(small_fit_config(spheres_root, **{'train.steps': 30}), str(tmp_path / 'resumed'))
  steps = os.listdir(tmp_path / 'resumed' / 'checkpoints')
  assert steps == ['30']
  resumed = train.train_and_evaluate(small_fit_config(spheres_root), str(tmp_path / 'resumed'))
  assert int(resumed.step) == int(straight.step) == 60
  for a, b in zip(_params(straight), _params(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_finished_run_is_not_retrained(spheres_root, tmp_path, capsys):
  config = small_fit_config(spheres_root, **{'train.steps': 30})
  first = train.train_and_evaluate(config, str(tmp_path))
  again = train.train_and_evaluate(config, str(tmp_path))
  assert 'nothing to train' in capsys.readouterr().out
  for a, b in zip(_params(first), _params(again)):
    np.testing.assert_array_equal(a, b)


def test_checkpoints_keep_the_last_few(spheres_root, tmp_path):
  config = small_fit_config(spheres_root, **{'train.checkpoint_every': 10, 'train.keep_checkpoints': 2})
  train.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'checkpoints'), key=int) == ['50', '60']


def test_resume_refuses_a_different_model_and_keeps_the_checkpoint(spheres_root, tmp_path):
  train.train_and_evaluate(small_fit_config(spheres_root, **{'train.steps': 30}), str(tmp_path))
  with pytest.raises(errors.CheckpointError, match=r'model\.width: 64 \(saved\) != 32'):
    train.train_and_evaluate(small_fit_config(spheres_root, **{'model.width': 32}), str(tmp_path))
  with pytest.raises(errors.CheckpointError, match='train.resume is False'):
    train.train_and_evaluate(small_fit_config(spheres_root, **{'train.resume': False}), str(tmp_path))
  assert os.listdir(tmp_path / 'checkpoints') == ['30']
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['model']['width'] == 64


def test_evaluate_writes_metrics_and_image(spheres_root, tmp_path):
  config = small_fit_config(spheres_root, **{'train.steps': 30})
  with pytest.raises(errors.CheckpointError, match='No checkpoint'):
    train.evaluate_checkpoint(config, str(tmp_path))
  train.train_and_evaluate(config, str(tmp_path))
  result = train.evaluate_checkpoint(config, str(tmp_path))
  out = tmp_path / 'eval' / 'train_step30'
  with open(out / 'metrics.json') as f:
    saved = json.load(f)
  assert saved['psnr'] == pytest.approx(result['psnr']) and 0 < saved['ssim'] <= 1
  assert saved['num_views'] == 1 and list(saved['views']) == ['train_000']
  import imageio.v3 as iio
  assert iio.imread(out / 'train_000_gt_pred.png').shape == (64, 128, 3)  # ground truth | prediction
  assert iio.imread(out / 'train_000.png').shape == (64, 64, 3)


def test_nan_loss_stops_without_saving(spheres_root, tmp_path):
  config = small_fit_config(spheres_root, **{'train.lr': 1e30, 'train.steps': 30})
  with pytest.raises(errors.NonFiniteLossError, match='at step'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(tmp_path / 'checkpoints')


def test_chunked_prediction_compiles_once(spheres_root):
  config = small_fit_config(spheres_root)
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  evaluator = train.evaluate.Evaluator(task, chunk=1000)  # 64 * 64 = 4096: 5 chunks, the last padded
  evaluator.run(state.variables, 'train')
  evaluator.run(state.variables, 'val')
  assert evaluator._predict._cache_size() == 1


def test_training_iteration_compiles_once_and_donates_the_state(spheres_root):
  # The step, the precrop switch included, is one compiled program: nothing about a later step (its
  # number, its precrop, the learning rate) may recompile it, and the old state's buffers are reused.
  config = small_nerf_config(spheres_root, **{'train.precrop_steps': 2})
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  data = train.parallel.put(task.train_data(), train.parallel.replicated(train.parallel.make_mesh()))
  iteration = train.make_train_iteration(task, batching.BatchPlan.from_config(config.train),
                                         config.train.microbatches)
  for _ in range(4):
    old = state
    state, _ = iteration(state, data)
    assert all(x.is_deleted() for x in jax.tree_util.tree_leaves(old.params))
  assert int(state.step) == 4 and iteration._cache_size() == 1


def test_microbatches_give_the_same_update(spheres_root):
  config = small_fit_config(spheres_root)
  task = tasks.make_task(config)
  data = jax.device_put(task.train_data())
  batch = task.sample_batch(data, jax.random.PRNGKey(0), 0, batching.BatchPlan.from_config(config.train))
  whole, m1 = train.train_step(train.create_train_state(config, task), batch, loss_fn=task.loss)
  parts, m4 = train.train_step(train.create_train_state(config, task), batch, loss_fn=task.loss,
                               microbatches=4)
  np.testing.assert_allclose(m1['loss'], m4['loss'], rtol=1e-5)
  for a, b in zip(_params(whole), _params(parts)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bfloat16_fit_trains_like_float32(spheres_root, tmp_path):
  # Mixed precision must still learn: the same short fit in both dtypes reaches about the same PSNR.
  psnr = {}
  for dtype in ('float32', 'bfloat16'):
    config = small_fit_config(spheres_root, **{'train.steps': 150, 'model.dtype': dtype})
    train.train_and_evaluate(config, str(tmp_path / dtype))
    with open(tmp_path / dtype / 'eval' / 'train_step150' / 'metrics.json') as f:
      psnr[dtype] = json.load(f)['psnr']
  assert psnr['float32'] > 20 and abs(psnr['bfloat16'] - psnr['float32']) < 1.0, psnr


def test_a_checkpoint_without_model_state_restores(spheres_root, tmp_path):
  # Checkpoints of NeRF's sampler written before TrainState had model_state: the same parameters.
  import orbax.checkpoint as ocp
  from nerf_jax import checkpoint
  config = small_nerf_config(spheres_root)
  task = tasks.make_task(config)
  state = jax.device_get(train.create_train_state(config, task))
  params = jax.tree_util.tree_map(lambda x: np.asarray(x) + 1.0, state.params)
  ckpts = checkpoint.Checkpoints(str(tmp_path), config)
  ckpts.check_config()
  ckpts.manager.save(3, args=ocp.args.StandardSave({'step': np.int32(3), 'params': params,
                                                   'opt_state': state.opt_state, 'key': state.key}))
  ckpts.manager.wait_until_finished()
  ckpts.close()
  restored, _ = train.load_state(config, task, str(tmp_path))
  assert int(restored.step) == 3 and restored.model_state == {}
  for a, b in zip(jax.tree_util.tree_leaves(restored.params), jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(a, b)
