"""LPIPS (Zhang et al. 2018, AlexNet variant 0.1) from weights the user has on disk; nothing is downloaded.

The weights are one .npz (see the README's LPIPS section for the conversion from the official PyTorch
files): conv{1..5}_w float32 [kh, kw, in, out] and conv{1..5}_b [out] of torchvision's AlexNet
features, lin{1..5} float32 [channels] of LPIPS's linear heads.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax.errors import ConfigError

# (stride, padding) of AlexNet's five convolutions; a 3x3 / 2 max-pool precedes conv2 and conv3.
_CONVS = ((4, 2), (1, 2), (1, 1), (1, 1), (1, 1))
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)


class LpipsWeightsError(ConfigError):
  """The LPIPS weights file is missing or malformed; the message says what to provide."""


def load_weights(path):
  """{name: float32 array} from the .npz at `path`, checked for every array LPIPS needs."""
  if not os.path.isfile(path):
    raise LpipsWeightsError(f'eval.lpips_weights={path!r} does not exist. Give the path of a local .npz '
                            f'(README, "LPIPS"), or leave it empty to report PSNR and SSIM only.')
  with np.load(path) as f:
    weights = {k: f[k].astype(np.float32) for k in f.files}
  needed = [f'conv{i}_{p}' for i in range(1, 6) for p in 'wb'] + [f'lin{i}' for i in range(1, 6)]
  missing = [k for k in needed if k not in weights]
  if missing:
    raise LpipsWeightsError(f'{path} lacks {missing}; see the README\'s LPIPS section for the layout.')
  for i in range(1, 6):
    if weights[f'lin{i}'].shape != (weights[f'conv{i}_w'].shape[-1],):
      raise LpipsWeightsError(f'{path}: lin{i} has shape {weights[f"lin{i}"].shape}, expected '
                              f'({weights[f"conv{i}_w"].shape[-1]},) to match conv{i}_w.')
  return weights


def _features(weights, x):
  """AlexNet's five ReLU activations of x: float32 [H, W, 3] scaled as LPIPS expects."""
  x = x[None]
  outputs = []
  for i, (stride, pad) in enumerate(_CONVS, start=1):
    if i in (2, 3):
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), 'VALID')
    x = jax.lax.conv_general_dilated(x, weights[f'conv{i}_w'], (stride, stride), [(pad, pad)] * 2,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    x = jax.nn.relu(x + weights[f'conv{i}_b'])
    outputs.append(x[0])
  return outputs


@jax.jit
def lpips(weights, image0, image1):
  """Perceptual distance between two images, float32 [H, W, 3] in [0, 1] -> float32 [] (0 = same)."""
  def prepare(image):
    return (2.0 * image - 1.0 - _SHIFT) / _SCALE

  total = 0.0
  for i, (a, b) in enumerate(zip(_features(weights, prepare(image0)), _features(weights, prepare(image1))),
                             start=1):
    # Unit-normalise each position's feature vector, then a learnt weight per channel.
    a = a / (jnp.sqrt(jnp.sum(a**2, -1, keepdims=True)) + 1e-10)
    b = b / (jnp.sqrt(jnp.sum(b**2, -1, keepdims=True)) + 1e-10)
    total = total + jnp.mean(jnp.sum((a - b)**2 * weights[f'lin{i}'], -1))
  return total
