"""The NeRF task: Blender scenes, rays sampled on the device, coarse + fine rendering loss."""

import numpy as np
import jax
import jax.numpy as jnp

from nerf_jax import batching, camera, datasets, metrics, sampling
from nerf_jax.models import NeRF, compute_dtype
from nerf_jax.tasks import ConfigError, EvalView


def select_views(num_views, views):
  """Indices chosen by a [start, stop, step] selection (the original framework's `cams`).

  stop = -1 means through the last view. Returns a list of ints.
  """
  start, stop, step = views
  stop = num_views if stop == -1 else min(stop, num_views)
  return list(range(start, stop, step))


def build_model(config):
  m = config.model
  return NeRF(mlp=dict(width=m.width, depth=m.depth, skip=m.skip, width_view=m.width_view,
                       pos_freqs=m.num_freqs, dir_freqs=m.dir_freqs, dtype=compute_dtype(m.dtype)),
              num_coarse=m.num_coarse, num_fine=m.num_fine, near=config.data.near, far=config.data.far,
              white_bkgd=config.data.white_bkgd)


class NerfTask:
  """Trains on split `data.split`; evaluates views of any split from the fine network.

  scene: a SceneSplit to train on instead of reading `data.split` (benchmarks).
  """

  def __init__(self, config, scene=None):
    self.config = config
    self.model = build_model(config)
    self.scene = datasets.load_split(config.data, config.data.split) if scene is None else scene
    if config.data.batching not in ('all_images', 'single_image'):
      raise ConfigError(f'data.batching must be "all_images" or "single_image", got '
                        f'{config.data.batching!r}.')
    images, height, width = self.scene.images.shape[:3]
    pool = height * width * (images if config.data.batching == 'all_images' else 1)
    if config.train.batch_size > pool:
      raise ConfigError(f'train.batch_size={config.train.batch_size} rays exceed the {pool} pixels a '
                        f'step can draw from ({config.data.batching}); lower it.')
    self._splits = {config.data.split: self.scene}

  def dummy_inputs(self):
    return camera.image_rays(jnp.eye(4), 1, 1, 1.0)

  def train_data(self):
    """{'images': float32 [N, H, W, 3], 'poses': float32 [N, 4, 4]}: rays are made per step from these."""
    return {'images': self.scene.images, 'poses': self.scene.poses}

  def sample_batch(self, data, key, step):
    """{'rays': Rays [B], 'rgb': [B, 3], 'keys': uint32 [B, 2]}: the step's rays and one PRNG key each.

    Per-ray keys make the stratified and hierarchical jitter a property of the ray, not of the batch's
    shape, so any split of the batch (devices, processes, microbatches) samples the same depths.
    """
    pixel_key, jitter_key = jax.random.split(key)
    num_images, height, width = data['images'].shape[:3]
    train = self.config.train
    image, rows, cols = batching.pixel_batch(
        pixel_key, step, num_images, height, width, train.batch_size,
        all_images=self.config.data.batching == 'all_images', precrop_steps=train.precrop_steps,
        precrop_frac=train.precrop_frac)
    rays = camera.rays_from_pixels(data['poses'][image], rows, cols, height, width, self.scene.focal)
    return {'rays': rays, 'rgb': data['images'][image, rows, cols],
            'keys': jax.random.split(jitter_key, train.batch_size)}

  def loss(self, params, batch):
    coarse, fine = self.model.apply(params, batch['rays'], batch['keys'])
    mse_coarse = metrics.mse(coarse.rgb, batch['rgb'])
    mse_fine = metrics.mse(fine.rgb, batch['rgb'])
    return mse_coarse + mse_fine, {'psnr': metrics.psnr_from_mse(mse_fine),
                                   'psnr_coarse': metrics.psnr_from_mse(mse_coarse),
                                   'acc': jnp.mean(fine.acc)}

  def predict(self, params, rays):
    _, fine = self.model.apply(params, rays, None)
    return {'rgb': fine.rgb, 'depth': fine.depth, 'acc': fine.acc}

  def densities(self, params, split=None):
    """Fine-network densities at the coarse bin centres along the centre row of view 0 of `split`
    (default: the training split): float32 [width, num_coarse], for the density histogram."""
    view = next(self.eval_views(split or self.config.data.split, (0, 1, 1)))
    height, width = view.target.shape[:2]
    rays = jax.tree_util.tree_map(lambda x: x.reshape(height, width, -1)[height // 2], view.inputs)
    m = self.model
    z_vals = sampling.stratified_samples(None, m.near, m.far, m.num_coarse, (width,))
    points = rays.origins[:, None, :] + z_vals[..., None] * rays.directions[:, None, :]
    _, sigma = m.apply(params, points, rays.viewdirs, method=lambda module, p, d: module.fine(p, d))
    return np.asarray(sigma)

  def split(self, name):
    if name not in self._splits:
      self._splits[name] = datasets.load_split(self.config.data, name)
    return self._splits[name]

  def eval_views(self, split, views=(0, -1, 1)):
    scene = self.split(split)
    for i in select_views(len(scene.names), views):
      yield self.view_from_pose(f'{split}_{i:03d}', scene.poses[i], scene.images[i])

  def view_from_pose(self, name, pose, target=None):
    """An EvalView of every pixel seen from `pose` (float32 [4, 4] camera-to-world) with the training
    split's image size and focal; target defaults to black (a pose with no ground truth)."""
    scene = self.scene
    rays = camera.image_rays(jnp.asarray(pose), scene.height, scene.width, scene.focal)
    flat = jax.tree_util.tree_map(lambda x: np.asarray(x).reshape(-1, x.shape[-1]), rays)
    if target is None:
      target = np.zeros((scene.height, scene.width, 3), np.float32)
    return EvalView(name, flat, target)

  def num_views(self, split):
    return len(self.split(split).names)

  def extra_images(self, outputs):
    """Depth (near = white, far or empty = black) and opacity maps: float [H, W] in [0, 1]."""
    near, far = self.config.data.near, self.config.data.far
    # Where nothing was hit the expected depth is ~0; show it as far (black), not as near.
    depth = np.where(outputs['acc'] > 0.5, outputs['depth'] / np.maximum(outputs['acc'], 1e-6), far)
    depth = np.clip((far - depth) / (far - near), 0.0, 1.0)
    return {'depth': depth, 'acc': np.clip(outputs['acc'], 0.0, 1.0)}
