"""LPIPS from local weights only: the distance behaves, evaluation reports it when (and only when) given."""

import json

import numpy as np
import pytest

from nerf_jax import lpips, train
from tests.conftest import small_fit_config


def _random_weights(path, channels=(8, 12, 16, 12, 12)):
  rng = np.random.default_rng(0)
  kernels = (11, 5, 3, 3, 3)
  weights, fan_in = {}, 3
  for i, (c, k) in enumerate(zip(channels, kernels), start=1):
    weights[f'conv{i}_w'] = rng.normal(0, (2 / (k * k * fan_in))**0.5, (k, k, fan_in, c)).astype(np.float32)
    weights[f'conv{i}_b'] = np.zeros(c, np.float32)
    weights[f'lin{i}'] = rng.uniform(0, 1, c).astype(np.float32)
    fan_in = c
  np.savez(path, **weights)
  return str(path)


def test_distance_is_zero_for_equal_images_and_grows_with_noise(tmp_path):
  weights = lpips.load_weights(_random_weights(tmp_path / 'w.npz'))
  rng = np.random.default_rng(1)
  image = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
  noise = rng.normal(0, 1, image.shape).astype(np.float32)
  same = float(lpips.lpips(weights, image, image))
  small = float(lpips.lpips(weights, image, np.clip(image + 0.02 * noise, 0, 1)))
  large = float(lpips.lpips(weights, image, np.clip(image + 0.3 * noise, 0, 1)))
  assert same == pytest.approx(0.0, abs=1e-7) and 0 < small < large


def test_missing_or_malformed_weights_are_named(tmp_path):
  with pytest.raises(lpips.LpipsWeightsError, match='does not exist'):
    lpips.load_weights(str(tmp_path / 'none.npz'))
  np.savez(tmp_path / 'bad.npz', conv1_w=np.zeros((11, 11, 3, 8), np.float32))
  with pytest.raises(lpips.LpipsWeightsError, match='lacks'):
    lpips.load_weights(str(tmp_path / 'bad.npz'))


def test_evaluation_reports_lpips_only_with_weights(spheres_root, tmp_path, capsys):
  config = small_fit_config(spheres_root, **{'train.steps': 30})
  train.train_and_evaluate(config, str(tmp_path / 'run'))
  capsys.readouterr()
  without = train.evaluate_checkpoint(config, str(tmp_path / 'run'))
  assert 'lpips' not in without and 'LPIPS: not computed' in capsys.readouterr().out
  weights = _random_weights(tmp_path / 'w.npz')
  config = small_fit_config(spheres_root, **{'train.steps': 30, 'eval.lpips_weights': weights})
  result = train.evaluate_checkpoint(config, str(tmp_path / 'run'))
  with open(tmp_path / 'run' / 'eval' / 'train_step30' / 'metrics.json') as f:
    saved = json.load(f)
  assert saved['lpips'] == pytest.approx(result['lpips']) and saved['lpips'] > 0
  assert saved['views']['train_000']['lpips'] == pytest.approx(saved['lpips'])
