"""Image fitting on the real lego view 0 (skipped where the shared data is absent)."""

import json

from nerf_jax import train
from tests.conftest import small_fit_config


def test_short_fit_on_lego(lego_root, tmp_path):
  config = small_fit_config(lego_root, **{
      'data.scene': 'lego', 'data.input_ratio': 0.25, 'model.width': 128, 'model.depth': 4,
      'model.num_freqs': 10, 'train.steps': 200, 'train.batch_size': 4096, 'train.lr': 5e-4})
  train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / 'eval' / 'train_step200' / 'metrics.json') as f:
    metrics = json.load(f)
  # An all-white guess scores about 10 dB on this view; 200 steps of fitting clear 18 dB.
  assert metrics['psnr'] > 18.0, metrics
