"""The SDF method (NeuS): its alpha, both eikonal gradients, the zero-level mesh and its config errors,
on analytic SDFs and the built-in scene's spheres."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import config_checks, errors, export, fields, rendering, tasks
from nerf_jax.datasets import generated
from nerf_jax.fields import sdf as sdf_field
from nerf_jax.types import FieldOutput
from tests.conftest import override, small_nerf_config

CENTRES = jnp.asarray([s[0] for s in generated.SPHERES], jnp.float32)
RADII = jnp.asarray([s[1] for s in generated.SPHERES], jnp.float32)


def test_neus_alpha_is_neus_formula_and_puts_a_plane_crossing_weight_at_the_crossing():
  # A ray from z = 1 straight down through the plane z = 0 (sdf = z, outside above): sample i's
  # interval [t_i, t_i + dt] has the SDF 1 - t at its ends exactly, so NeuS's discrete alpha
  # max((Phi(f(t_i)) - Phi(f(t_i + dt)) + 1e-5) / (Phi(f(t_i)) + 1e-5), 0) (with the 1e-5s of NeuS's
  # code) is what neus_alpha must give from the midpoint and the slope.
  dt = 2.0 / 200
  starts = jnp.arange(200) * dt
  mids = starts + 0.5 * dt
  depths = []
  for inv_s in (10.0, 100.0, 1000.0, 10000.0):
    alpha = rendering.neus_alpha(1.0 - mids, -jnp.ones(200), jnp.full(200, dt), inv_s)
    phi = lambda x: jax.nn.sigmoid(x * inv_s)
    reference = jnp.clip((phi(1.0 - starts) - phi(1.0 - starts - dt) + 1e-5) / (phi(1.0 - starts) + 1e-5), 0, 1)
    np.testing.assert_allclose(alpha, reference, atol=2e-5)
    weights = rendering.weights_from_alpha(alpha)
    near = jnp.abs(mids - 1.0) < 1.5 * dt
    depths.append(float(jnp.sum(weights * mids) / jnp.sum(weights)))
    if inv_s >= 1000:  # sharp: all the weight in the two intervals at the crossing
      assert float(jnp.sum(weights[near])) > 0.99 and float(jnp.sum(weights)) > 0.999
  np.testing.assert_allclose(depths[-1], 1.0, atol=0.2 * dt)
  # A ray moving away from a surface outside it (slope > 0) makes no opacity: the back of a surface
  # does not occlude.
  leaving = rendering.neus_alpha(0.05 + mids, jnp.ones(200), jnp.full(200, dt), 1000.0)
  assert float(leaving.max()) < 1e-3


def _sphere(points, scale=1.0):
  """scale * (|p - c| - 0.7) about c = (0.1, -0.2, 0.3): float32 [N, 3] -> (sdf [N], aux [1, N])."""
  d = scale * (jnp.linalg.norm(points - jnp.asarray([0.1, -0.2, 0.3]), axis=-1) - 0.7)
  return d, d[None, :] * 0.0


@pytest.mark.parametrize('method, tolerance', [('analytic', 1e-5), ('finite_difference', 5e-3)])
def test_both_eikonal_gradients_match_a_spheres_and_train_its_scale(method, tolerance):
  points = jax.random.uniform(jax.random.PRNGKey(0), (500, 3), jnp.float32, -1.5, 1.5)
  # Away from the centre, where the curvature (1 / distance) keeps the differences' error small.
  points = points[jnp.linalg.norm(points - jnp.asarray([0.1, -0.2, 0.3]), axis=-1) > 0.3]
  sdf, _, grad = sdf_field.value_and_gradient(_sphere, points, method, 0.005)
  offset = points - jnp.asarray([0.1, -0.2, 0.3])
  unit = offset / jnp.linalg.norm(offset, axis=-1, keepdims=True)
  np.testing.assert_allclose(grad, unit, atol=tolerance)
  np.testing.assert_allclose(sdf, _sphere(points)[0], atol=1e-6)
  # The eikonal loss's gradient through each: d/ds mean((|s u| - 1)^2) = 2 (s - 1).
  def eikonal(scale):
    _, _, g = sdf_field.value_and_gradient(lambda p: _sphere(p, scale), points, method, 0.005)
    return jnp.mean((jnp.linalg.norm(g, axis=-1) - 1.0) ** 2)
  np.testing.assert_allclose(jax.grad(eikonal)(1.5), 1.0, rtol=1e-2)


def test_the_sdf_field_starts_as_its_sphere_with_both_gradients_agreeing():
  model = override(small_nerf_config('data'), **{
      'model.field': 'sdf', 'model.encoding': 'hashgrid', 'model.dir_encoding': 'sh', 'model.hash_levels': 4,
      'model.hash_table_log2': 12, 'model.hash_finest': 64, 'model.sdf_radius': 0.6, 'model.width': 128}).model
  points = jax.random.uniform(jax.random.PRNGKey(1), (64, 1, 3), jnp.float32, -1.0, 1.0)
  viewdirs = jnp.tile(jnp.asarray([[0.0, 0.0, 1.0]]), (64, 1))
  outputs = {}
  for method in sdf_field.GRADIENTS:
    field = fields.build_field(override_model(model, sdf_gradient=method), fields.FieldScene())
    variables = field.init(jax.random.PRNGKey(0), points, viewdirs)
    outputs[method] = field.apply(variables, points, viewdirs)
  fd, exact = outputs['finite_difference'].extras, outputs['analytic'].extras
  np.testing.assert_allclose(fd['sdf'], exact['sdf'], atol=1e-6)  # the same parameters
  np.testing.assert_allclose(fd['gradient'], exact['gradient'], atol=0.02)
  # Geometric initialisation: roughly the distance to the sphere of radius 0.6, normals outward.
  radius = np.linalg.norm(points, axis=-1)
  assert np.mean(np.abs(exact['sdf'] - (radius - 0.6))) < 0.1
  cosine = np.sum(np.asarray(exact['gradient']) * np.asarray(points), axis=-1) / radius
  assert np.mean(cosine[radius > 0.3] > 0.8) > 0.9


def override_model(model_config, **values):
  copy = model_config.copy_and_resolve_references()
  with copy.unlocked():
    for key, value in values.items():
      setattr(copy, f'sdf_{key}' if not key.startswith('sdf_') else key, value)
  return copy


class SpheresSdf(nn.Module):
  """The built-in scene's spheres as an SDF field: exact signed distance, gradient and each sphere's
  colour, a fixed sharpness."""

  @nn.compact
  def __call__(self, points, viewdirs, cond=None, raw_noise=None):
    distance = jnp.linalg.norm(points[..., None, :] - CENTRES, axis=-1) - RADII  # [..., S, spheres]
    nearest = jnp.argmin(distance, axis=-1)
    sdf = jnp.min(distance, axis=-1)
    offset = points - CENTRES[nearest]
    rgb = jnp.asarray([s[2] for s in generated.SPHERES], jnp.float32)[nearest]
    return FieldOutput(rgb=rgb, extras={'sdf': sdf, 'gradient': offset / jnp.linalg.norm(offset, axis=-1,
                                                                                              keepdims=True),
                                        'inv_s': jnp.full(sdf.shape, 2000.0)})


@pytest.fixture(scope='module')
def analytic_sdf(spheres_root):
  """(config, task, variables) of the neus sampler on SpheresSdf, built once for the module's tests."""
  fields.FIELDS.register('test_spheres_sdf', lambda model_config, encoding, dir_encoding, scene: SpheresSdf())
  try:
    config = small_nerf_config(spheres_root, **{
        'model.field': 'test_spheres_sdf', 'model.sampler': 'neus', 'model.box': (-1.2, 1.2),
        'model.grid_resolution': 32, 'model.march_steps': 512, 'data.random_bkgd': True,
        'loss.terms': ('eikonal', 'mask'), 'mesh.box': (-1.2, -1.2, -1.2, 1.2, 1.2, 1.2)})
    task = tasks.make_task(config)
    params, state = jax.jit(task.init_variables)(jax.random.PRNGKey(0))  # eager: 10x slower
    yield config, task, {**params, **state}
  finally:
    fields.FIELDS.unregister('test_spheres_sdf')


def test_zero_level_mesh_of_an_analytic_sdf_lies_on_it_and_meets_the_accuracy_measure(analytic_sdf, tmp_path):
  config, task, variables = analytic_sdf
  mesh_config = override(config, **{'mesh.resolution': 96}).mesh
  paths, report = export.extract_mesh(task, variables, mesh_config, str(tmp_path))
  import trimesh
  mesh = trimesh.load(paths[0])
  # Level 0; the only pieces dropped are specks of a few faces where two spheres' crease passes
  # exactly through grid points.
  assert report['threshold'] == 0.0 and report['faces_dropped'] < 1e-3 * report['faces']
  distance = np.abs(generated.spheres_sdf(mesh.vertices))
  assert np.median(distance) < 2e-3 and distance.max() < 0.02, (np.median(distance), distance.max())
  # The measure: mean vertex distance <= 0.008, >= 95% of the visible sphere points within 0.02.
  accuracy, completeness = generated.mesh_accuracy(mesh.vertices)
  assert accuracy < 0.004 and completeness > 0.99, (accuracy, completeness)
  # ... which a mesh 3% too small fails on both counts.
  shrunk = 0.97 * np.asarray(mesh.vertices)
  accuracy, completeness = generated.mesh_accuracy(shrunk)
  assert accuracy > 0.008 and completeness < 0.95, (accuracy, completeness)
  # Vertex colours from the colour network along the normal: each sphere's own.
  colours = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
  nearest = np.argmin(np.abs(np.linalg.norm(mesh.vertices[:, None] - np.asarray(CENTRES), axis=-1)
                             - np.asarray(RADII)), axis=1)
  expected = np.asarray([s[2] for s in generated.SPHERES])[nearest]
  assert np.mean(np.abs(colours - expected).max(axis=1) < 0.01) > 0.95


def test_the_sampler_renders_the_analytic_spheres_with_their_silhouettes_and_depths(analytic_sdf):
  config, task, variables = analytic_sdf
  view = next(task.eval_views('val', (0, 1, 1)))
  rays = jax.tree_util.tree_map(lambda x: x.reshape(-1, x.shape[-1]), view.inputs)
  out = jax.jit(task.predict)(variables, rays)
  # A sharp SDF of the true geometry: opacity 1 on the spheres' pixels, 0 elsewhere, and each hit
  # pixel's depth where its ray meets the spheres (found by marching the exact SDF).
  alpha = task.split('val').alphas[0].reshape(-1)
  acc = np.asarray(out['acc'])
  assert np.mean(np.abs(acc - alpha)[(alpha > 0.99) | (alpha < 0.01)] < 0.05) > 0.97
  origins, directions = np.asarray(rays.origins, np.float64), np.asarray(rays.directions, np.float64)
  t = np.full(len(origins), 2.0)
  for _ in range(200):  # sphere tracing in units of the (un-normalised) directions
    t += generated.spheres_sdf(origins + t[:, None] * directions) / np.linalg.norm(directions, axis=-1)
  hit = alpha > 0.999
  np.testing.assert_allclose(np.asarray(out['depth'])[hit], t[hit], atol=0.01)


def test_training_renders_carry_the_eikonal_gradients_and_the_loss_terms(analytic_sdf):
  config, task, variables = analytic_sdf
  from nerf_jax import batching
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(1), 100, plan)
  loss, aux = jax.jit(task.loss)(variables, batch, 100)
  renders = jax.jit(lambda v, b: task.model.apply(v, task.batch_rays(v, b), b['keys'], b['background']))(
      variables, batch)
  extras = renders['fine'].extras
  # Packed: one gradient per budget slot, the real samples marked; and the free points' own.
  assert extras['sdf_gradient'].shape == (extras['sample_valid'].shape[0], 3)
  assert 0 < int(extras['sample_valid'].sum()) <= extras['sample_valid'].shape[0]
  assert extras['free_gradient'].shape == (config.model.neus_free_points, 3)
  # The exact SDF's gradients have norm 1: the eikonal term is ~0; the mask term is near its least,
  # the alphas' own entropy (fractional at the silhouettes); the colours are unshaded so the
  # photometric loss is not 0.
  alpha = np.clip(np.asarray(batch['alpha']), 1e-4, 1 - 1e-4)
  entropy = np.mean(-(alpha * np.log(alpha) + (1 - alpha) * np.log(1 - alpha)))
  assert float(aux['loss_eikonal']) < 1e-8
  assert float(aux['loss_mask']) < config.loss.mask_weight * (entropy + 0.05), (aux['loss_mask'], entropy)
  assert np.isfinite(float(loss))


@pytest.mark.parametrize('values, message', [
    ({'data.ndc': True}, "model.sampler='neus' marches an SDF in world space: data.ndc=True"),
    ({'data.random_bkgd': False}, "loss.terms has 'mask', which needs the images' alpha"),
    ({'model.sdf_gradient': 'numeric'}, "model.sdf_gradient must be one of"),
])
def test_surface_configs_with_bad_input_are_one_line_errors(values, message):
  from configs import demo_surface
  config = override(demo_surface.get_config(), **values)
  problems = config_checks.config_problems(config)
  assert any(message in p for p in problems), problems
  with pytest.raises(errors.ConfigError) as raised:
    config_checks.validate(config)
  assert '\n' not in str(raised.value)


def _small_surface_config(root, **values):
  settings = {'model.field': 'sdf', 'model.sampler': 'neus', 'model.encoding': 'hashgrid',
              'model.dir_encoding': 'sh', 'model.hash_levels': 4, 'model.hash_table_log2': 12,
              'model.hash_finest': 64, 'model.box': (-1.2, 1.2), 'model.grid_resolution': 16,
              'model.march_steps': 128, 'model.march_samples': (8, 8), 'model.march_eval_samples': (8, 8),
              'model.sdf_radius': 0.8, 'model.neus_free_points': 128, 'loss.terms': ('eikonal',),
              'train.lr': 1e-2, 'train.batch_size': 256}
  settings.update(values)
  return small_nerf_config(root, **settings)


def test_photos_without_masks_need_the_background_field_which_then_takes_the_background(spheres_root):
  import dataclasses
  from nerf_jax import batching, datasets
  # (The finite differences here, the analytic gradient in the training test: both through a loss.)
  config = _small_surface_config(spheres_root, **{'model.sdf_gradient': 'finite_difference'})
  maskless = dataclasses.replace(datasets.load_split(config.data, 'train'), alphas=None)
  with pytest.raises(errors.ConfigError, match="without alpha .no masks. needs a background: set "
                                               "model.neus_background='field'"):
    tasks.make_task(config, scene=maskless)
  config = override(config, **{'model.neus_background': 'field'})
  task = tasks.make_task(config, scene=maskless)
  params, state = jax.jit(task.init_variables)(jax.random.PRNGKey(0))  # eager: 10x slower
  assert 'background' in params['params']
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(1), 100, plan)
  grads = jax.jit(jax.grad(lambda p: task.loss({**p, **state}, batch, 100)[0]))(params)
  table = grads['params']['background']['encoding']['table']
  assert float(jnp.abs(table).max()) > 0  # the background field learns from the photos
  # A ray that misses the box shows the background field's render, not white.
  view = next(task.eval_views('train', (0, 1, 1)))
  rays = jax.tree_util.tree_map(lambda x: x.reshape(-1, x.shape[-1])[:1], view.inputs)  # a corner ray
  rgb = jax.jit(task.predict)({**params, **state}, rays)['rgb']
  assert float(jnp.abs(rgb - 1.0).max()) > 0.1, rgb


def test_neus_trains_from_the_sphere_towards_the_scene(spheres_root, tmp_path):
  # A few dozen steps from the geometric initialisation: the loss falls, the sharpness and the grid
  # are reported, the mesh is at level 0.
  from tests.conftest import train_on_a_fixed_batch
  config = _small_surface_config(spheres_root, **{'train.steps': 40, 'train.checkpoint_every': 40,
                                                  'data.random_bkgd': True, 'loss.terms': ('eikonal', 'mask'),
                                                  'model.grid_warmup_steps': 32})
  task, variables, before, after = train_on_a_fixed_batch(config, str(tmp_path))
  assert float(after) < 0.7 * float(before), (before, after)
  report = task.model.report(variables)
  assert report['inv_s'] > 0 and 0 < report['grid_occupancy'] < 1
  _, mesh_report = export.extract_mesh(task, variables, override(config, **{'mesh.resolution': 32,
                                                                            'mesh.colours': False}).mesh,
                                       str(tmp_path / 'mesh'))
  assert mesh_report['threshold'] == 0.0 and mesh_report['vertices'] > 100
