"""The NeRF task: scenes of any format, rays sampled on the device, coarse + fine rendering loss."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import (batching, camera, camera_path, datasets, export, fields, losses, metrics, occupancy,
                      sampling, video)
from nerf_jax.datasets import llff
from nerf_jax.errors import ConfigError
from nerf_jax.models import NeRF, OccupancyNeRF
from nerf_jax.tasks.base import EvalView, Task, select_views

BATCHING = ('all_images', 'single_image')
SAMPLERS = ('hierarchical', 'occupancy')
RENDER_PATHS = ('auto', 'orbit', 'spiral')
NDC_NEAR = 1.0  # the world's near plane that NDC maps to depth 0 (LLFF scenes are scaled to put it there)


def build_model(data_config, model_config, near, far):
  """model.sampler 'hierarchical': NeRF's coarse + fine fields; 'occupancy': one field marched
  through an occupancy grid (OccupancyNeRF)."""
  m = model_config
  if m.sampler not in SAMPLERS:
    raise ConfigError(f'model.sampler must be one of {SAMPLERS}, got {m.sampler!r}.')
  if m.sampler == 'occupancy':
    if m.density_noise > 0 or data_config.ndc:
      raise ConfigError('model.sampler=\'occupancy\' marches a box in world space: set '
                        'model.density_noise=0 and data.ndc=False, or use model.sampler=\'hierarchical\'.')
    return OccupancyNeRF(fine=fields.build_field(m), near=near, far=far, box=tuple(m.box),
                         resolution=m.grid_resolution, step_size=march_step(m), max_steps=m.march_steps,
                         stages=tuple(m.march_samples), eval_stages=tuple(m.march_eval_samples),
                         white_bkgd=data_config.white_bkgd)
  coarse, fine = fields.build_field(m), fields.build_field(m)
  if m.density_noise > 0 and 'raw_noise' not in inspect.signature(type(coarse).__call__).parameters:
    # Found here, not as a TypeError inside the jitted training step.
    raise ConfigError(f'model.density_noise={m.density_noise} but the field {m.field!r} '
                      f'({type(coarse).__name__}) takes no raw_noise argument: set model.density_noise=0, '
                      f'or give its __call__ a raw_noise=None argument added to its raw density.')
  return NeRF(coarse=coarse, fine=fine, num_coarse=m.num_coarse, num_fine=m.num_fine, near=near, far=far,
              white_bkgd=data_config.white_bkgd, lindisp=data_config.lindisp, density_noise=m.density_noise)


def march_step(model_config):
  """The occupancy sampler's step in world units: model.march_steps steps cross the box's diagonal."""
  lo, hi = model_config.box
  return float(np.sqrt(3.0) * (hi - lo) / model_config.march_steps)


class NerfTask(Task):
  """Trains on split `data.split`; evaluates views of any split from the fine network.

  scene: a SceneSplit to train on instead of reading `data.split` (benchmarks).
  """
  name = 'nerf'
  item = 'ray'

  def __init__(self, data_config, model_config, loss_config, scene=None):
    if data_config.batching not in BATCHING:
      raise ConfigError(f'data.batching must be one of {BATCHING}, got {data_config.batching!r}.')
    self.data_config = data_config
    self.model_config = model_config
    self.train_split = data_config.split
    self.scene = datasets.load_split(data_config, data_config.split) if scene is None else scene
    self._splits = {data_config.split: self.scene}
    self.near, self.far = datasets.sampling_bounds(data_config, self.scene)
    if data_config.lindisp and self.near <= 0:
      raise ConfigError(f'data.lindisp=True samples in inverse depth and needs near > 0, got {self.near}.')
    self.model = build_model(data_config, model_config, self.near, self.far)
    # One NDC mapping for the whole scene: with each view's own intrinsics, views of different cameras
    # would put the same world point at different NDC coordinates. The first training camera's.
    self.ndc_intrinsics = self.scene.intrinsics[0]
    self.loss_terms = {name: losses.LOSS_TERMS.get(name)(loss_config) for name in loss_config.terms}
    # The renders the model returns, in order; the last one is what evaluation shows.
    self.render_names = ('fine',) if model_config.sampler == 'occupancy' else ('coarse', 'fine')
    if data_config.random_bkgd and self.scene.alphas is None:
      raise ConfigError(f'data.random_bkgd=True needs images with alpha; {data_config.format!r} scene '
                        f'{data_config.scene!r} has none: set data.random_bkgd=False.')

  def rays(self, poses, intrinsics, rows, cols):
    """camera.rays_from_pixels, then in NDC where data.ndc is set (the scene's one NDC mapping): the
    rays the model sees."""
    rays = camera.rays_from_pixels(poses, intrinsics, rows, cols)
    return camera.ndc_rays(rays, self.ndc_intrinsics, NDC_NEAR) if self.data_config.ndc else rays

  def image_rays(self, pose, intrinsics, height, width):
    """self.rays through every pixel of one view, flattened: numpy Rays [height * width, 3]."""
    rows, cols = camera.pixel_grid(height, width)
    return _flat(self.rays(jnp.asarray(pose), jnp.asarray(intrinsics), rows, cols))

  def init_inputs(self):
    return camera.image_rays(jnp.eye(4), camera.centred_intrinsics(1.0, 1, 1), 1, 1)

  def train_data(self):
    """{'images': float32 [N, H, W, 3], 'poses': float32 [N, 4, 4], 'intrinsics': float32 [N, 4]}, and
    with data.random_bkgd 'alphas': float32 [N, H, W]: rays are made per step from these."""
    data = {'images': self.scene.images, 'poses': self.scene.poses, 'intrinsics': self.scene.intrinsics}
    if self.data_config.random_bkgd:
      data['alphas'] = self.scene.alphas
    return data

  def pool_size(self, plan):
    """Pixels a step draws from: every image's or one image's, the central crop's during precrop."""
    images, height, width = self.scene.images.shape[:3]
    if plan.precrop_steps > 0:
      _, height, _, width = batching.crop_box(height, width, plan.precrop_frac)
    return height * width * (images if self.data_config.batching == 'all_images' else 1)

  def sample_batch(self, data, key, step, plan):
    """{'rays': Rays [B], 'rgb': [B, 3], 'keys': uint32 [B, 2]}: the step's rays and one PRNG key each;
    with data.random_bkgd also 'background' [B, 3], a random colour behind each ray that the target
    is composited onto instead of white, so the field cannot paint the background into the object.

    Per-ray keys make the stratified and hierarchical jitter a property of the ray, not of the batch's
    shape, so any split of the batch (devices, processes, microbatches) samples the same depths.
    """
    pixel_key, jitter_key = jax.random.split(key)
    num_images, height, width = data['images'].shape[:3]
    image, rows, cols = batching.pixel_batch(
        pixel_key, step, num_images, height, width, plan.batch_size,
        all_images=self.data_config.batching == 'all_images', precrop_steps=plan.precrop_steps,
        precrop_frac=plan.precrop_frac)
    rays = self.rays(data['poses'][image], data['intrinsics'][image], rows, cols)
    batch = {'rays': rays, 'rgb': data['images'][image, rows, cols],
             'keys': jax.random.split(jitter_key, plan.batch_size)}
    if 'alphas' in data:
      background = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 3), (3,)))(batch['keys'])
      # images hold rgb * a + (1 - a) (white): swap the white for the background.
      alpha = data['alphas'][image, rows, cols][:, None]
      batch['rgb'] = batch['rgb'] + (1.0 - alpha) * (background - 1.0)
      batch['background'] = background
    return batch

  def loss(self, params, batch, step):
    outputs = self.model.apply(params, batch['rays'], batch['keys'], batch.get('background'))
    renders = dict(zip(self.render_names, outputs))
    mses = {name: metrics.mse(render.rgb, batch['rgb'], render.complete) for name, render in renders.items()}
    total = sum(mses.values())
    aux = {'psnr': metrics.psnr_from_mse(mses['fine']), 'acc': jnp.mean(renders['fine'].acc)}
    if 'coarse' in mses:
      aux['psnr_coarse'] = metrics.psnr_from_mse(mses['coarse'])
    if renders['fine'].complete is not None:  # the share of the batch's rays the budget trained
      aux['rays_complete'] = jnp.mean(renders['fine'].complete)
    for name, term in self.loss_terms.items():
      aux[f'loss_{name}'] = term(renders, batch, step)
      total = total + aux[f'loss_{name}']
    return total, aux

  def alarms(self, metrics, step, plan):
    """opacity_collapsed: the batch's mean opacity has fallen to ~0 once precrop is over, so the
    network has learnt to see nothing (often the dead-density failure after the crop's easy start)."""
    collapsed = step > plan.precrop_steps and float(metrics['acc']) < 0.01
    message = (f'at step {step} the mean opacity of the batch is {metrics["acc"]:.2g}: the network sees '
               f'nothing (collapsed or dead density). Check --mode network and the density activation; '
               f'lower train.lr or lengthen train.precrop_steps.')
    return {'opacity_collapsed': message if collapsed else None}

  def after_step(self, variables, step, key):
    """The occupancy sampler's grid: every model.grid_every steps, its densities are refreshed from
    the field (occupancy.update_density) and its bits recomputed. Other samplers: unchanged."""
    if self.model_config.sampler != 'occupancy':
      return variables
    m, lo, hi = self.model_config, *self.model_config.box

    def update(variables):
      grid = variables['occupancy']
      density = occupancy.update_density(
          grid['density'], grid['bits'], key, step, lambda p: self.field_density(variables, p),
          res=m.grid_resolution, lo=lo, hi=hi, warmup_steps=m.grid_warmup_steps, decay=m.grid_decay)
      bits = occupancy.occupied_bits(density, march_step(m), m.grid_threshold)
      return {**variables, 'occupancy': {'density': density, 'bits': bits}}

    return jax.lax.cond(step % m.grid_every == 0, update, lambda v: v, variables)

  def predict(self, params, rays):
    fine = self.model.apply(params, rays, None)[-1]
    return {'rgb': fine.rgb, 'depth': fine.depth, 'acc': fine.acc}

  def densities(self, params):
    """Fine-field densities at the coarse bin centres along the centre row of view 0 of the training
    split: float32 [width, num_coarse], for the density histogram."""
    view = next(self.eval_views(self.train_split, (0, 1, 1)))
    height, width = view.target.shape[:2]
    rays = jax.tree_util.tree_map(lambda x: x.reshape(height, width, -1)[height // 2], view.inputs)
    samples = self.model_config.num_coarse
    z_vals = sampling.stratified_samples(None, self.near, self.far, samples, (width,),
                                         lindisp=self.data_config.lindisp)
    points = rays.origins[:, None, :] + z_vals[..., None] * rays.directions[:, None, :]
    return np.asarray(self.field_density(params, points.reshape(-1, 3))).reshape(width, samples)

  def split(self, name):
    if name not in self._splits:
      self._splits[name] = datasets.load_split(self.data_config, name)
    return self._splits[name]

  def eval_views(self, split, views=(0, -1, 1)):
    scene = self.split(split)
    for i in select_views(len(scene.names), views):
      rays = self.image_rays(scene.poses[i], scene.intrinsics[i], scene.height, scene.width)
      yield EvalView(f'{split}_{i:03d}', rays, scene.images[i])

  def view_from_pose(self, name, pose, intrinsics, height, width):
    """Every pixel of a camera at `pose`; the target is black (a pose has no ground truth)."""
    rays = self.image_rays(pose, intrinsics, height, width)
    return EvalView(name, rays, np.zeros((height, width, 3), np.float32))

  def camera_path(self, render_config):
    """render.camera_path's file; without one, render.path: 'orbit' around the origin (Blender scenes:
    +Z up) at render.elevation degrees, radius render.radius or the training cameras' mean distance;
    'spiral', NeRF's path in front of a forward-facing scene (llff.spiral_poses); 'auto', the orbit for
    inward-facing scenes and the spiral for forward-facing ones. Seen by the training split's first
    camera."""
    c = render_config
    if c.camera_path:
      return camera_path.read(c.camera_path)
    if c.path not in RENDER_PATHS:
      raise ConfigError(f'render.path must be one of {RENDER_PATHS}, got {c.path!r}.')
    path = c.path if c.path != 'auto' else ('orbit' if self.scene.layout == 'inward' else 'spiral')
    if path == 'spiral':
      scene = self.scene
      near = float(np.min(scene.near)) if scene.near is not None else self.data_config.near
      far = float(np.max(scene.far)) if scene.far is not None else self.data_config.far
      poses = llff.spiral_poses(scene.poses, near, far, c.frames)
    else:
      poses = video.orbit_poses(c.frames, c.radius or video.orbit_radius(self.scene.poses), c.elevation)
    intrinsics = np.repeat(self.scene.intrinsics[:1], len(poses), axis=0)
    return camera_path.CameraPath(poses, intrinsics, self.scene.height, self.scene.width, float(c.fps),
                                  name=path)

  def field_density(self, params, points):
    _, sigma = self.model.apply(params, points[:, None, :], jnp.zeros_like(points),
                                method=lambda module, p, d: module.fine(p, d))
    return sigma[:, 0]

  def field_colour(self, params, points, viewdirs):
    rgb, _ = self.model.apply(params, points[:, None, :], viewdirs,
                              method=lambda module, p, d: module.fine(p, d))
    return rgb[:, 0]

  def scene_box(self):
    """The cube every training camera sees past the near bound (export.common_view_box)."""
    if self.data_config.ndc:
      raise ConfigError('--mode mesh on an NDC scene (data.ndc=True) would mesh NDC space, not the '
                        'world; train with data.ndc=False (and data.bounds=\'scene\') to export a mesh.')
    return export.common_view_box(self.scene.poses, self.near)

  def view_points(self, view, outputs, min_opacity):
    """Each pixel whose opacity is over min_opacity, at its expected depth along its ray, coloured as
    rendered: (points [P, 3], colours [P, 3])."""
    opaque = outputs['acc'].reshape(-1) > min_opacity
    depth = (outputs['depth'] / np.maximum(outputs['acc'], 1e-6)).reshape(-1)[opaque]
    rays = view.inputs
    points = rays.origins[opaque] + depth[:, None] * rays.directions[opaque]
    if self.data_config.ndc:  # back to the world; NDC depth 1 is at infinity, so drop what is nearly there
      keep = points[:, 2] < 1.0 - 1e-3
      points = camera.world_from_ndc(points[keep], self.ndc_intrinsics, NDC_NEAR)
      return points, outputs['rgb'].reshape(-1, 3)[opaque][keep]
    return points, outputs['rgb'].reshape(-1, 3)[opaque]

  def num_views(self, split):
    return len(self.split(split).names)

  def extra_images(self, outputs):
    """Depth (near = white, far or empty = black) and opacity maps: float [H, W] in [0, 1]. In NDC the
    depth t is 1 - near / z, so the same map is the disparity near / z ('disparity', not 'depth')."""
    near, far = self.near, self.far
    # Where nothing was hit the expected depth is ~0; show it as far (black), not as near.
    depth = np.where(outputs['acc'] > 0.5, outputs['depth'] / np.maximum(outputs['acc'], 1e-6), far)
    depth = np.clip((far - depth) / (far - near), 0.0, 1.0)
    return {'disparity' if self.data_config.ndc else 'depth': depth,
            'acc': np.clip(outputs['acc'], 0.0, 1.0)}

  def inspect(self, params, predict):
    """Opacity on rays from each training camera through its image centre (towards the object) and
    its four corners (mostly background): a healthy network is neither transparent on the first (the
    dead-density failure) nor opaque on all of them."""
    scene = self.scene
    h, w = scene.height, scene.width
    rows = np.tile([h // 2, 0, 0, h - 1, h - 1], len(scene.poses))
    cols = np.tile([w // 2, 0, w - 1, 0, w - 1], len(scene.poses))
    views = np.repeat(np.arange(len(scene.poses)), 5)
    rays = self.rays(scene.poses[views], scene.intrinsics[views], rows, cols)
    acc = predict(params, jax.device_get(rays))['acc'].reshape(-1, 5)
    centre, corners = acc[:, 0], acc[:, 1:]
    report = {'opacity_centre_rays': round(float(centre.mean()), 4),
              'opacity_corner_rays': round(float(corners.mean()), 4)}
    if 'occupancy' in params:  # the share of the grid's cells that rays may sample
      grid = params['occupancy']
      report['grid_occupancy'] = round(float(np.mean(np.asarray(grid['bits']))), 4)
      report['grid_cells_seen'] = round(float(np.mean(np.asarray(grid['density']) >= 0)), 4)
    if not self.data_config.ndc:  # a threshold for --mode mesh from densities on a grid over the scene box
      lo, hi = self.scene_box()
      sample = jax.jit(self.field_density)(params, export.grid_points(lo, hi, 32))
      report['suggested_mesh_threshold'] = round(export.suggest_threshold(np.asarray(sample)), 2)
    problems = []
    if centre.max() < 0.01:
      problems.append(
          f'DEAD DENSITY: opacity is ~0 on every ray through the scene centre (max {centre.max():.2g}). '
          f'The density output is <= 0 everywhere, so no gradient reaches it and it will not recover: '
          f'check the density activation and its bias (nerf_jax keeps softplus(raw - 1)).')
    # A photo of a real scene (no alpha) is opaque on every ray, and rightly so.
    if self.scene.alphas is not None and min(centre.min(), corners.min()) > 0.99:
      problems.append(
          f'OPAQUE EVERYWHERE: opacity is ~1 on every ray, background corners included (min '
          f'{min(centre.min(), corners.min()):.3f}): the density is too large everywhere, or far is '
          f'beyond the scene so the last interval fills every ray.')
    return report, problems


def _flat(rays):
  """Rays [H, W, 3] -> numpy Rays [H * W, 3]."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x).reshape(-1, x.shape[-1]), rays)
