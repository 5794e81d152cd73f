"""Image fitting: an MLP maps a pixel's (u, v), through an encoding, to its RGB."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from nerf_jax import batching, datasets, fields, metrics
from nerf_jax.cameras import pinhole
from nerf_jax.fields.layers import Dense, features_first, features_last
from nerf_jax.tasks.base import EvalView, Task


def uv_grid(height, width):
  """Pixel coordinates scaled to [0, 1]: u along the width, v along the height, corners exactly 0 and 1.

  returns float32 [height, width, 2]; [0, 0] = (0, 0) top-left, [-1, -1] = (1, 1) bottom-right.
  """
  rows, cols = pinhole.pixel_grid(height, width)
  u = cols.astype(np.float32) / np.float32(max(width - 1, 1))
  v = rows.astype(np.float32) / np.float32(max(height - 1, 1))
  return np.stack([u, v], axis=-1)


class ImageMLP(nn.Module):
  """Image fitting: pixel coordinates (u, v) -> RGB.

  encoding: module mapping float32 [..., 2] to [..., features] (fields.ENCODINGS); width, depth:
  hidden layer size and count (ReLU); dtype: the matrix products' dtype (parameters stay float32).
  """
  encoding: nn.Module
  width: int = 128
  depth: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, uv):
    """uv: float32 [..., 2] in [0, 1] -> rgb: float32 [..., 3] in (0, 1)."""
    encoded = self.encoding(uv)
    x = features_first(encoded)  # layers.Dense's layout
    for _ in range(self.depth):
      x = nn.relu(Dense(self.width, self.dtype)(x))
    return features_last(nn.sigmoid(Dense(3, self.dtype)(x)), encoded.shape[:-1])


class ImageFitTask(Task):
  """Fits view `data.view` of split `data.split`; evaluation renders that view of `eval.split`.

  image: float32 [H, W, 3] to fit instead of reading the data (benchmarks); evaluated as the same view.
  """
  name = 'img_fit'
  item = 'pixel'

  def __init__(self, data_config, model_config, loss_config, image=None):
    del loss_config  # the loss is the colour's MSE
    self.data_config = data_config
    self.train_split = data_config.split
    m = model_config
    self.model = ImageMLP(encoding=fields.build_encoding(m, 'position'), width=m.width, depth=m.depth,
                          dtype=fields.compute_dtype(m.dtype))
    if image is None:
      image = datasets.load_split(data_config, data_config.split, views=[data_config.view]).images[0]
    self.image = image

  def init_inputs(self):
    return jnp.zeros((1, 2), jnp.float32)

  def train_data(self):
    """{'uv': float32 [H * W, 2], 'rgb': float32 [H * W, 3]}."""
    height, width = self.image.shape[:2]
    return {'uv': uv_grid(height, width).reshape(-1, 2), 'rgb': self.image.reshape(-1, 3)}

  def pool_size(self, plan):
    return self.image.shape[0] * self.image.shape[1]

  def sample_batch(self, data, key, step, plan):
    index = batching.epoch_batch(key, step, plan.batch_size, data['rgb'].shape[0])
    return {'uv': data['uv'][index], 'rgb': data['rgb'][index]}

  def loss(self, variables, batch, step):
    mse = metrics.mse(self.model.apply(variables, batch['uv']), batch['rgb'])
    return mse, {'psnr': metrics.psnr_from_mse(mse)}

  def predict(self, variables, inputs):
    return {'rgb': self.model.apply(variables, inputs)}

  def eval_views(self, split, views=None):
    del views  # image fitting evaluates the one view it fits
    view = self.data_config.view
    if split == self.data_config.split:
      image = self.image
    else:
      image = datasets.load_split(self.data_config, split, views=[view]).images[0]
    height, width = image.shape[:2]
    yield EvalView(f'{split}_{view:03d}', uv_grid(height, width).reshape(-1, 2), image)

  def num_views(self, split):
    return 1
