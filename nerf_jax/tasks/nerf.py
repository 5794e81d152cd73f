"""The NeRF task: a scene's fields queried by a sampler (samplers.SAMPLERS), rendered, and trained on
the photometric loss of the renders the sampler names plus the loss terms of loss.terms."""

import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import export, fields, losses, sampling, samplers
from nerf_jax.errors import ConfigError
from nerf_jax.fields import appearance
from nerf_jax.losses.photometric import photometric_loss
from nerf_jax.types import NO_CAMERA, Conditioning
from nerf_jax.tasks.scene import SceneTask

HISTOGRAM_SAMPLES = 64  # samples per ray of the density histogram (densities)


class NerfTask(SceneTask):
  """A scene method whose model is the sampler model.sampler names, on fields model.field names.

  The sampler's renders are a dict in its RENDERS order; the photometric loss is the sum of the MSEs
  of those in its PHOTOMETRIC, and evaluation shows the last one. Loss terms see every render.
  """
  name = 'nerf'

  def __init__(self, data_config, model_config, loss_config, scene=None):
    super().__init__(data_config, model_config, loss_config, scene)
    m = model_config
    self.sampler = samplers.SAMPLERS.get(m.sampler)
    problems = self.sampler.scene_problems(m, self.scene)
    if problems:
      raise ConfigError(f'{data_config.format!r} scene {data_config.scene!r}: ' + '; '.join(problems) + '.')
    field_scene = fields.FieldScene(num_cameras=self.num_cameras)
    samplers.check_field(m.sampler, self.sampler, fields.build_field(m, field_scene), m.field)
    self.model = self.sampler.build(data_config, m, self.near, self.far,
                                    lambda: fields.build_field(m, field_scene))
    self.shown = self.sampler.RENDERS[-1]
    self.loss_terms = {name: losses.LOSS_TERMS.get(name)(loss_config) for name in loss_config.terms}
    self._check_term_needs(loss_config)

  def eval_notes(self, split):
    """{'appearance': which code the views of `split` used} where the fields have per-image appearance
    codes (model.appearance_features > 0): a training view its own, any other the codes' mean or zeros."""
    note = appearance.describe(self.model_config, self.num_cameras, split == self.train_split)
    return {} if note is None else {'appearance': note}

  def _check_term_needs(self, loss_config):
    """A ConfigError naming the term, what it needs and what the sampler renders, before any step."""
    needs = {name: losses.LOSS_TERMS.plugin(name).needs for name in loss_config.terms}
    if not any(needs.values()):
      return
    renders = jax.eval_shape(lambda: self.model.init_with_output(jax.random.PRNGKey(0), self.init_inputs(),
                                                                 jnp.zeros((1, 1, 2), jnp.uint32))[0])
    have = set()
    for render in renders.values():
      have |= {name for name in ('edges', 'complete') if getattr(render, name) is not None}
      have |= set(render.extras)
    for name, wanted in needs.items():
      missing = [n for n in wanted if n not in have]
      if missing:
        raise ConfigError(f'loss.terms has {name!r}, which needs {missing} from the renders, but '
                          f'model.sampler={self.model_config.sampler!r} renders {sorted(have)} besides '
                          f'rgb, depth, acc and weights: drop the term or choose a sampler that gives them.')

  def loss(self, variables, batch, step):
    """(photometric MSE summed over the sampler's PHOTOMETRIC renders + the loss terms, metrics):
    losses.photometric.photometric_loss, plus a camera model's penalty.

    variables: the state's variables; batch: sample_batch's; step: int32 []. Metrics: photometric_loss's;
    with a camera model that has them, 'loss_pose' (its penalty, in the loss) and how far the poses
    moved (SceneTask.camera_loss).
    """
    rays = self.batch_rays(variables, batch)
    renders = self.model.apply(_model_variables(variables), rays, batch['keys'], batch.get('background'))
    total, aux = photometric_loss(renders, batch, step, photometric=self.sampler.photometric(), shown=self.shown,
                                  terms=self.loss_terms)
    pose_penalty, pose_metrics = self.camera_loss(variables)  # a camera model's regulariser and report
    aux.update(pose_metrics)
    return total + pose_penalty, aux

  def alarms(self, metrics, step, plan):
    """opacity_collapsed: the batch's mean opacity has fallen to ~0 once precrop is over, so the
    network has learnt to see nothing (often the dead-density failure after the crop's easy start)."""
    collapsed = step > plan.precrop_steps and float(metrics['acc']) < 0.01
    message = (f'at step {step} the mean opacity of the batch is {metrics["acc"]:.2g}: the network sees '
               f'nothing (collapsed or dead density). Check --mode network and the density activation; '
               f'lower train.lr or lengthen train.precrop_steps.')
    return {'opacity_collapsed': message if collapsed else None}

  def after_step(self, variables, step, key):
    """The sampler's own state refreshed (samplers.base.Sampler.update)."""
    return self.model.update(variables, step, key, self.field_density)

  def predict(self, variables, rays):
    """{'rgb': [n, 3], 'depth': [n] (expected z_val where the ray ends), 'acc': [n]} of the shown
    render of rays [n] (deterministic)."""
    shown = self.model.apply(_model_variables(variables), rays, None)[self.shown]
    return {'rgb': shown.rgb, 'depth': shown.depth, 'acc': shown.acc}

  def densities(self, variables):
    """Shown-field densities at HISTOGRAM_SAMPLES bin centres along the centre row of view 0 of the
    training split: float32 [width, HISTOGRAM_SAMPLES], for the density histogram."""
    view = next(self.eval_views(self.train_split, (0, 1, 1)))
    height, width = view.target.shape[:2]
    rays = jax.tree_util.tree_map(lambda x: x.reshape(height, width, -1)[height // 2], view.inputs)
    z_vals = sampling.stratified_samples(None, self.near, self.far, HISTOGRAM_SAMPLES, (width,),
                                         lindisp=self.data_config.lindisp)
    points = sampling.points_along(rays, z_vals)
    return np.asarray(self.field_density(variables, points.reshape(-1, 3))).reshape(width, HISTOGRAM_SAMPLES)

  def field_density(self, variables, points):
    """The shown field's density at points float32 [N, 3] -> [N], as seen from no training camera."""
    return self._field(variables, points, jnp.zeros_like(points)).density[:, 0]

  def surface_values(self, variables, points):
    """The sampler's surface (samplers.base.Sampler.surface: the density, or an SDF's -sdf) at points
    float32 [N, 3] -> [N]."""
    cond = Conditioning(camera=jnp.full(points.shape[:1], NO_CAMERA, jnp.int32))
    return self.model.apply(_model_variables(variables), points[:, None, :], jnp.zeros_like(points), cond,
                            method='surface')[:, 0]

  def surface_level(self, values):
    """The sampler's SURFACE_LEVEL (an SDF's 0), else Otsu's split of the densities (export.suggest_threshold)."""
    level = self.sampler.SURFACE_LEVEL
    return export.suggest_threshold(values) if level is None else float(level)

  def field_colour(self, variables, points, viewdirs):
    """Its colour at points float32 [N, 3] seen along unit viewdirs [N, 3] -> [N, 3]."""
    return self._field(variables, points, viewdirs).rgb[:, 0]

  def _field(self, variables, points, viewdirs):
    # No training camera looks at a mesh's vertex: a conditioned field gives its evaluation value.
    cond = Conditioning(camera=jnp.full(points.shape[:1], NO_CAMERA, jnp.int32))
    return self.model.apply(_model_variables(variables), points[:, None, :], viewdirs, cond, method='field')

  def inspect(self, variables, predict):
    """Opacity on rays from each training camera through its image centre (towards the object) and
    its four corners (mostly background): a healthy network is neither transparent on the first (the
    dead-density failure) nor opaque on all of them. Then the camera model's report (SceneTask.inspect:
    how far pose refinement moved the training cameras)."""
    scene = self.scene
    h, w = scene.height, scene.width
    rows = np.tile([h // 2, 0, 0, h - 1, h - 1], len(scene.poses))
    cols = np.tile([w // 2, 0, w - 1, 0, w - 1], len(scene.poses))
    views = np.repeat(np.arange(len(scene.poses)), 5)
    rays = self.rays(scene.poses[views], scene.intrinsics[views], rows, cols, views)
    acc = predict(variables, jax.device_get(rays))['acc'].reshape(-1, 5)
    centre, corners = acc[:, 0], acc[:, 1:]
    report = {'opacity_centre_rays': round(float(centre.mean()), 4),
              'opacity_corner_rays': round(float(corners.mean()), 4)}
    camera_report, problems = super().inspect(variables, predict)
    report.update(camera_report)
    report.update(self.model.report(variables))
    if not self.data_config.ndc:  # the level --mode mesh takes, from a grid over the scene box
      lo, hi = self.scene_box()
      sample = jax.jit(self.surface_values)(variables, export.grid_points(lo, hi, 32))
      report['suggested_mesh_threshold'] = round(self.surface_level(np.asarray(sample)), 2)
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


def _model_variables(variables):
  """The sampler's collections of the state's variables (the camera model's are applied apart)."""
  return {name: value for name, value in variables.items() if name != 'camera'}
