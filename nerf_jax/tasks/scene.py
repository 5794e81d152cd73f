"""The base of every task that learns a scene from posed images: its data, rays, views and cameras.

SceneTask owns everything a scene method shares, whatever it renders: the training split and its
other splits, rays from poses (in NDC where data.ndc is set), batches of pixels, the camera model
(cameras.CAMERA_MODELS) that may refine the training poses inside the loss, the views to
evaluate, camera paths, the scene box and point clouds from rendered depth. A method (tasks.nerf's
NerfTask, a surface method) subclasses it and adds its model, loss and prediction.
"""

import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import batching, cameras, config_rules, datasets, export, video
from nerf_jax.cameras import camera_path, pinhole
from nerf_jax.datasets import llff
from nerf_jax.errors import ConfigError
from nerf_jax.tasks.base import EvalView, Task, select_views
from nerf_jax.types import NO_CAMERA

BATCHING = ('all_images', 'single_image')
RENDER_PATHS = ('auto', 'orbit', 'spiral')
NDC_NEAR = 1.0  # the world's near plane that NDC maps to depth 0 (LLFF scenes are scaled to put it there)


def check(config):
  """The rules of the keys every scene task reads (registered with each scene task)."""
  problems = []
  config_rules.one_of(problems, config, 'data.batching', BATCHING)
  config_rules.one_of(problems, config, 'render.path', RENDER_PATHS)
  return problems


class SceneTask(Task):
  """Trains on split `data.split` of a posed-image scene; evaluates views of any split.

  scene: a SceneSplit to train on instead of reading `data.split` (benchmarks).
  Subclasses build self.model and implement loss and predict; batch_rays gives the loss its rays and
  camera_loss the camera model's penalty and metrics, to add.
  """
  item = 'ray'
  has_cameras = True

  def __init__(self, data_config, model_config, loss_config, scene=None):
    del loss_config
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
    # One NDC mapping for the whole scene: with each view's own intrinsics, views of different cameras
    # would put the same world point at different NDC coordinates. The first training camera's.
    self.ndc_intrinsics = self.scene.intrinsics[0]
    if data_config.random_bkgd and self.scene.alphas is None:
      raise ConfigError(f'data.random_bkgd=True needs images with alpha; {data_config.format!r} scene '
                        f'{data_config.scene!r} has none: set data.random_bkgd=False.')
    self.num_cameras = len(self.scene.poses)
    self.camera_model = cameras.CAMERA_MODELS.get(model_config.camera)(model_config, self.num_cameras)

  # --- rays ---

  def rays(self, poses, intrinsics, rows, cols, camera_index=None):
    """pinhole.rays_from_pixels, then in NDC where data.ndc is set (the scene's one NDC mapping): the
    rays the model sees. camera_index: int [...] each ray's training camera (types.Rays.camera)."""
    rays = pinhole.rays_from_pixels(poses, intrinsics, rows, cols, camera_index)
    return pinhole.ndc_rays(rays, self.ndc_intrinsics, NDC_NEAR) if self.data_config.ndc else rays

  def image_rays(self, pose, intrinsics, height, width, camera_index=NO_CAMERA):
    """self.rays through every pixel of one view, flattened: numpy Rays with fields [height * width, 3]
    (camera [height * width, 1])."""
    rows, cols = pinhole.pixel_grid(height, width)
    return _flat(self.rays(jnp.asarray(pose), jnp.asarray(intrinsics), rows, cols, camera_index))

  def batch_rays(self, variables, batch):
    """The rays of a batch of pixels (sample_batch's), from its images' poses passed through the camera
    model with variables['camera'] (jittable, differentiable in them): Rays [B]."""
    poses = batch['poses']
    if self.camera_model is not None:
      poses = self.camera_model.apply({'params': variables['camera']}, poses, batch['image'])
    return self.rays(poses, batch['intrinsics'], batch['rows'], batch['cols'], batch['image'])

  # --- training ---

  def init_variables(self, key):
    """The model's variables (Task.init_variables) and, for a camera model with parameters, its own
    under 'camera' (trained like the fields', initialised from a key of its own)."""
    params, state = super().init_variables(key)
    if self.camera_model is not None:
      poses, image = jnp.asarray(self.scene.poses[:1]), jnp.zeros((1,), jnp.int32)
      params['camera'] = self.camera_model.init(jax.random.fold_in(key, 1), poses, image)['params']
    return params, state

  def optimizer_groups(self):
    """The camera model's parameters at its own learning rate and warm-up (cameras.CameraModel's
    lr_scale and warmup_steps; optim.group_schedule). Its group is there whatever their values, so a
    resumed run may change them (the optimiser state's layout stays)."""
    model = self.camera_model
    if model is None:
      return ()
    if model.warmup_steps:
      return (('^camera/', float(model.lr_scale), int(model.warmup_steps)),)
    return (('^camera/', float(model.lr_scale)),)

  def camera_loss(self, variables):
    """(the camera model's penalty, float32 [] or 0.0, {'loss_pose': that penalty, and its report's
    metrics: how far the poses moved}) for a subclass's loss to add (jittable). Without a camera model:
    (0.0, {})."""
    model = self.camera_model
    if model is None:
      return 0.0, {}
    params = variables['camera']
    metrics = dict(model.report(params))
    penalty = model.penalty(params)
    if penalty is None:
      return 0.0, metrics
    return penalty, {'loss_pose': penalty, **metrics}

  def init_inputs(self):
    return pinhole.image_rays(jnp.eye(4), pinhole.centred_intrinsics(1.0, 1, 1), 1, 1, camera=0)

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
    """The step's pixels, not yet rays: {'image', 'rows', 'cols': int32 [B], 'poses': [B, 4, 4],
    'intrinsics': [B, 4] (the pixels' cameras, as given), 'rgb': [B, 3], 'keys': uint32 [B, 2]}; with
    data.random_bkgd also 'background' [B, 3], a random colour behind each ray that the target is
    composited onto instead of white, so the field cannot paint the background into the object, and
    'alpha' [B], the pixels' alpha (a mask loss's target). The
    loss makes the rays (batch_rays), so a camera model can refine the poses it is given.

    Per-ray keys make the stratified and hierarchical jitter a property of the ray, not of the batch's
    shape, so any split of the batch (devices, processes, microbatches) samples the same depths.
    """
    pixel_key, jitter_key = jax.random.split(key)
    num_images, height, width = data['images'].shape[:3]
    image, rows, cols = batching.pixel_batch(
        pixel_key, step, num_images, height, width, plan.batch_size,
        all_images=self.data_config.batching == 'all_images', precrop_steps=plan.precrop_steps,
        precrop_frac=plan.precrop_frac)
    batch = {'image': image, 'rows': rows, 'cols': cols, 'poses': data['poses'][image],
             'intrinsics': data['intrinsics'][image], 'rgb': data['images'][image, rows, cols],
             'keys': jax.random.split(jitter_key, plan.batch_size)}
    if 'alphas' in data:
      background = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 3), (3,)))(batch['keys'])
      # images hold rgb * a + (1 - a) (white): swap the white for the background.
      alpha = data['alphas'][image, rows, cols][:, None]
      batch['rgb'] = batch['rgb'] + (1.0 - alpha) * (background - 1.0)
      batch['background'] = background
      batch['alpha'] = alpha[:, 0]  # what a mask loss compares the render's opacity with
    return batch

  # --- evaluation and rendering ---

  def split(self, name):
    if name not in self._splits:
      self._splits[name] = datasets.load_split(self.data_config, name)
    return self._splits[name]

  def eval_views(self, split, views=(0, -1, 1)):
    """Views of `split` from their given poses; a training view's rays carry its camera index (its
    per-image conditioning), any other view's types.NO_CAMERA. A camera model's learned correction is
    never applied here: held-out views have none, and views of the training split (eval.train_split
    = data.split) are scored at their given poses too, so with pose refinement their PSNR also counts
    what the refinement moved."""
    scene = self.split(split)
    for i in select_views(len(scene.names), views):
      index = i if split == self.train_split else NO_CAMERA
      rays = self.image_rays(scene.poses[i], scene.intrinsics[i], scene.height, scene.width, index)
      yield EvalView(f'{split}_{i:03d}', rays, scene.images[i], str(scene.names[i]))

  def num_views(self, split):
    return len(self.split(split).names)

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

  def extra_images(self, outputs):
    """Depth (near = white, far or empty = black) and opacity maps: float [H, W] in [0, 1]. In NDC the
    depth t is 1 - near / z, so the same map is the disparity near / z ('disparity', not 'depth')."""
    near, far = self.near, self.far
    # Where little was hit the expected depth means little; show it as far (black), not as near.
    depth = np.where(outputs['acc'] > 0.5, outputs['depth'], far)
    depth = np.clip((far - depth) / (far - near), 0.0, 1.0)
    return {'disparity' if self.data_config.ndc else 'depth': depth,
            'acc': np.clip(outputs['acc'], 0.0, 1.0)}

  # --- the debugging modes ---

  def inspect(self, variables, predict):
    """The camera model's report (how far it moved the training poses), rounded; no problems."""
    del predict
    if self.camera_model is None:
      return {}, []
    report = jax.device_get(self.camera_model.report(variables['camera']))
    return {name: round(float(value), 4) for name, value in report.items()}, []

  # --- exporting the scene ---

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
    depth = outputs['depth'].reshape(-1)[opaque]
    rays = view.inputs
    points = rays.origins[opaque] + depth[:, None] * rays.directions[opaque]
    if self.data_config.ndc:  # back to the world; NDC depth 1 is at infinity, so drop what is nearly there
      keep = points[:, 2] < 1.0 - 1e-3
      points = pinhole.world_from_ndc(points[keep], self.ndc_intrinsics, NDC_NEAR)
      return points, outputs['rgb'].reshape(-1, 3)[opaque][keep]
    return points, outputs['rgb'].reshape(-1, 3)[opaque]


def _flat(rays):
  """Rays [H, W, ...] -> numpy Rays [H * W, ...]."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x).reshape(-1, x.shape[-1]), rays)
