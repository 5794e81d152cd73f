"""NeRF's frequency (positional) encoding as a field's input module."""

import flax.linen as nn

from nerf_jax import config_rules
from nerf_jax.encoding import frequency_encoding

KEYS = {
    'model.num_freqs': (10, "'frequency' encoding: frequencies of the input coordinates (nerf: points)"),
    'model.dir_freqs': (4, "nerf, 'frequency' dir_encoding: frequencies of the view directions"),
}


def check(config):
  problems = []
  for key in KEYS:
    config_rules.in_range(problems, config, key, 0, integer=True)
  return problems


class FrequencyEncoding(nn.Module):
  """gamma(x) with frequencies 2^0 .. 2^(num_freqs - 1) and x itself (encoding.frequency_encoding).

  No parameters. __call__: x float32 [..., d] -> float32 [..., d * (1 + 2 * num_freqs)].
  """
  num_freqs: int = 10

  def __call__(self, x):
    return frequency_encoding(x, self.num_freqs)


def build(model_config, role):
  """model.num_freqs frequencies for positions (and image (u, v)), model.dir_freqs for directions."""
  return FrequencyEncoding(model_config.num_freqs if role == 'position' else model_config.dir_freqs)
