"""Image fitting: an MLP maps a pixel's (u, v), through a frequency encoding, to its RGB."""

import jax.numpy as jnp
import numpy as np

from nerf_jax import batching, datasets, metrics
from nerf_jax.models import ImageMLP, compute_dtype
from nerf_jax.tasks import ConfigError, EvalView


def uv_grid(height, width):
  """Pixel coordinates scaled to [0, 1]: u along the width, v along the height, corners exactly 0 and 1.

  returns float32 [height, width, 2]; [0, 0] = (0, 0) top-left, [-1, -1] = (1, 1) bottom-right.
  """
  u = np.arange(width, dtype=np.float32) / max(width - 1, 1)
  v = np.arange(height, dtype=np.float32) / max(height - 1, 1)
  return np.stack(np.meshgrid(u, v, indexing='xy'), axis=-1)


class ImageFitTask:
  """Fits view `data.view` of split `data.split`; evaluation renders that view of `eval.split`.

  image: float32 [H, W, 3] to fit instead of reading the data (benchmarks); evaluated as the same view.
  """

  def __init__(self, config, image=None):
    self.config = config
    self.model = ImageMLP(width=config.model.width, depth=config.model.depth,
                          num_freqs=config.model.num_freqs,
                          dtype=compute_dtype(config.model.dtype))
    if image is None:
      image = datasets.load_split(config.data, config.data.split, views=[config.data.view]).images[0]
    self.image = image
    if config.train.batch_size > image.shape[0] * image.shape[1]:
      raise ConfigError(f'train.batch_size={config.train.batch_size} exceeds the image\'s '
                        f'{image.shape[0] * image.shape[1]} pixels; lower it.')

  def dummy_inputs(self):
    return jnp.zeros((1, 2), jnp.float32)

  def train_data(self):
    """{'uv': float32 [H * W, 2], 'rgb': float32 [H * W, 3]}."""
    height, width = self.image.shape[:2]
    return {'uv': uv_grid(height, width).reshape(-1, 2), 'rgb': self.image.reshape(-1, 3)}

  def sample_batch(self, data, key, step):
    index = batching.epoch_batch(key, step, self.config.train.batch_size, data['rgb'].shape[0])
    return {'uv': data['uv'][index], 'rgb': data['rgb'][index]}

  def loss(self, params, batch):
    mse = metrics.mse(self.model.apply(params, batch['uv']), batch['rgb'])
    return mse, {'psnr': metrics.psnr_from_mse(mse)}

  def predict(self, params, inputs):
    return {'rgb': self.model.apply(params, inputs)}

  def eval_views(self, split, views=None):
    del views  # image fitting evaluates the one view it fits
    view = self.config.data.view
    if split == self.config.data.split:
      image = self.image
    else:
      image = datasets.load_split(self.config.data, split, views=[view]).images[0]
    height, width = image.shape[:2]
    yield EvalView(f'{split}_{view:03d}', uv_grid(height, width).reshape(-1, 2), image)

  def num_views(self, split):
    return 1

  def extra_images(self, outputs):
    return {}
