"""Flax modules. Each takes raw coordinates and encodes them itself, so params + inputs say everything."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax.encoding import frequency_encoding


class ImageMLP(nn.Module):
  """Image fitting: pixel coordinates (u, v) -> RGB.

  width, depth: hidden layer size and count (ReLU); num_freqs: frequencies of the (u, v) encoding.
  """
  width: int = 128
  depth: int = 4
  num_freqs: int = 10

  @nn.compact
  def __call__(self, uv):
    """uv: float32 [..., 2] in [0, 1] -> rgb: float32 [..., 3] in (0, 1)."""
    x = frequency_encoding(uv, self.num_freqs)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.sigmoid(nn.Dense(3)(x))


def mlp_flops_per_point(in_features, widths):
  """Multiply-add FLOPs (2 per MAC) of one forward pass through dense layers of the given widths."""
  flops, fan_in = 0, in_features
  for width in widths:
    flops += 2 * fan_in * width
    fan_in = width
  return flops


def image_mlp_flops_per_pixel(width, depth, num_freqs):
  """Forward FLOPs of ImageMLP for one pixel (dense layers only; the encoding is negligible)."""
  in_features = 2 * (1 + 2 * num_freqs)
  return mlp_flops_per_point(in_features, [width] * depth + [3])


def count_params(params):
  """Number of scalars in a parameter pytree."""
  return sum(int(jnp.size(p)) for p in jax.tree_util.tree_leaves(params))
