"""Camera pose refinement, model.camera='refine' (nerf_jax/pose_refinement.py): the exponential map, the
recovery of a known perturbation of the built-in scene's cameras, the warm-up of its learning rate, its
penalty in the loss, its report, its config rules, and held-out views that ignore it."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from nerf_jax import batching, cameras, config_checks, fields, optim, tasks
from nerf_jax.cameras import pinhole, pose_refinement
from nerf_jax.datasets import generated
from nerf_jax.errors import ConfigError
from nerf_jax.types import NO_CAMERA
from tests.conftest import override, small_nerf_config


def _rotation(axis, angle):
  """The closed form: a rotation by `angle` (radians) about the unit `axis`, float64 [3, 3]."""
  x, y, z = axis
  k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
  return np.cos(angle) * np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * np.outer(axis, axis)


def test_the_exponential_map_is_a_rotation_by_the_angle_about_the_axis_with_a_finite_gradient_at_zero():
  axes = np.random.default_rng(0).normal(size=(6, 3))
  axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
  angles = np.array([1e-5, 5e-4, 2e-3, 0.05, 1.0, 3.0])  # both sides of the Taylor branch
  ours = np.asarray(jax.jit(pose_refinement.so3_exp)(jnp.asarray(angles[:, None] * axes, jnp.float32)))
  for axis, angle, rotation in zip(axes, angles, ours):
    np.testing.assert_allclose(rotation, _rotation(axis, angle), atol=2e-6)
  # A quarter turn about +z takes +x to +y; batched input keeps its leading axes.
  quarter = pose_refinement.so3_exp(jnp.array([[[0.0, 0.0, np.pi / 2]]]))
  assert quarter.shape == (1, 1, 3, 3)
  np.testing.assert_allclose(np.asarray(quarter)[0, 0] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-6)
  # At zero: the identity, and dR/d omega_i = hat(e_i), finite (no NaN from |omega| = 0).
  jacobian = np.asarray(jax.jacfwd(pose_refinement.so3_exp)(jnp.zeros(3)))
  np.testing.assert_array_equal(np.asarray(pose_refinement.so3_exp(jnp.zeros(3))), np.eye(3))
  for i in range(3):
    np.testing.assert_allclose(jacobian[..., i], np.asarray(pose_refinement.hat(jnp.eye(3)[i])), atol=1e-7)
  grads = jax.grad(lambda v: jnp.sum(pose_refinement.so3_exp(v) ** 3))(jnp.zeros(3))
  assert np.all(np.isfinite(grads))
  # The penalty's and the report's norms have a gradient at zero too (the deltas start there).
  model = pose_refinement.PoseRefinement(num_cameras=2)
  zeros = {'rotation': jnp.zeros((2, 3)), 'translation': jnp.zeros((2, 3))}
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(jax.grad(model.penalty)(zeros)))


# The fixed analytic scene the cameras are recovered against: the built-in scene's spheres on a ground
# plane inside a sky dome, every surface painted with smooth plane waves, traced exactly. Every pixel sees
# texture, near (spheres, ground) and far (the dome): the far texture pins a camera's rotation and the
# parallax against the near one its translation, which spheres on an empty background leave nearly
# interchangeable (a small turn and a sideways shift move their image alike).
CENTRES = jnp.asarray([s[0] for s in generated.SPHERES], jnp.float32)
RADII = jnp.asarray([s[1] for s in generated.SPHERES], jnp.float32)
GROUND_Z, DOME_RADIUS = -0.95, 6.0
WAVES = jnp.array([[5.0, 1.5, -2.5], [-2.0, 5.0, 3.0], [2.5, -3.5, 5.0]])  # radians per unit, one per channel


def _traced_colour(rays):
  """Colour of each ray's first surface (jittable; differentiable in the rays except at occlusions)."""
  o, d = rays.origins, rays.directions
  oc = o[..., None, :] - CENTRES
  a = jnp.sum(d * d, -1)
  b = jnp.sum(oc * d[..., None, :], -1)
  disc = b * b - a[..., None] * (jnp.sum(oc * oc, -1) - RADII ** 2)
  t = (-b - jnp.sqrt(jnp.where(disc > 0, disc, 1.0))) / a[..., None]
  t_spheres = jnp.min(jnp.where((disc > 0) & (t > 0), t, jnp.inf), axis=-1)
  down = d[..., 2] < 0
  t_ground = jnp.where(down, (GROUND_Z - o[..., 2]) / jnp.where(down, d[..., 2], -1.0), jnp.inf)
  b_dome, c_dome = jnp.sum(o * d, -1), jnp.sum(o * o, -1) - DOME_RADIUS ** 2  # seen from inside
  t_dome = (-b_dome + jnp.sqrt(b_dome * b_dome - a * c_dome)) / a
  points = o + jnp.minimum(jnp.minimum(t_spheres, t_ground), t_dome)[..., None] * d
  return 0.5 + 0.5 * jnp.sin(points @ WAVES.T)


def _all_pixels(task, poses):
  """A batch of every pixel of every training view, from `poses` [N, 4, 4] (sample_batch's keys)."""
  scene = task.scene
  n, pixels = len(poses), scene.height * scene.width
  rows, cols = pinhole.pixel_grid(scene.height, scene.width)
  image = np.repeat(np.arange(n, dtype=np.int32), pixels)
  return {'image': jnp.asarray(image), 'rows': jnp.tile(jnp.ravel(rows), n),
          'cols': jnp.tile(jnp.ravel(cols), n), 'poses': jnp.asarray(poses, jnp.float32)[image],
          'intrinsics': jnp.asarray(scene.intrinsics)[image]}


def _refine_config(root, **values):
  return small_nerf_config(root, **{'model.camera': 'refine', 'model.width': 32, 'model.depth': 2,
                                    'model.num_coarse': 8, 'model.num_fine': 8, **values})


def test_refinement_recovers_a_known_perturbation_of_the_built_in_scenes_cameras(spheres_root):
  start = time.perf_counter()
  steps = 300
  # Only the deltas learn, at the package's group rate and warm-up; the penalties nearly off, so the
  # optimum is the true poses (nerfacto's weights pull noticeably towards zero at 32 x 32 pixels).
  config = _refine_config(spheres_root, **{
      'model.pose_lr_scale': 0.5, 'model.pose_warmup_steps': 10, 'model.pose_rotation_penalty': 1e-5,
      'model.pose_translation_penalty': 1e-5, 'train.lr': 3e-2, 'train.lr_decay_steps': steps,
      'train.lr_decay_rate': 0.1})
  task = tasks.make_task(config)
  true_poses = task.scene.poses.astype(np.float64)
  n = len(true_poses)
  # Each training camera turned by 2.5 degrees about a random axis and moved 0.1 units (the scene is
  # ~2.4 units across, the cameras 4 away), both in its own frame: given = true @ inverse(motion), so the
  # deltas that undo it are exactly (2.5 degrees * axis, 0.1 * direction).
  rng = np.random.default_rng(0)
  axes, directions = rng.normal(size=(2, n, 3))
  axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  motion = np.asarray(pose_refinement.rigid_motions(jnp.asarray(np.radians(2.5) * axes, jnp.float32),
                                                    jnp.asarray(0.1 * directions, jnp.float32)), np.float64)
  given = true_poses @ np.linalg.inv(motion)
  batch = _all_pixels(task, given)
  targets = jax.jit(_traced_colour)(task.rays(_all_pixels(task, true_poses)['poses'], batch['intrinsics'],
                                              batch['rows'], batch['cols']))

  def loss(params):  # the training loss's camera parts: rays through the camera model, its penalty
    variables = {'camera': params['camera']}
    penalty, _ = task.camera_loss(variables)
    return jnp.mean((_traced_colour(task.batch_rays(variables, batch)) - targets) ** 2) + penalty

  groups = task.optimizer_groups()
  assert groups == (('^camera/', 0.5, 10),)
  tx = optim.make_optimizer(config.train, groups)

  @jax.jit
  def fit(params):
    def step(_, carry):
      params, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    return jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))[0]

  zero = {'camera': task.camera_model.init(jax.random.PRNGKey(0), jnp.asarray(given[:1], jnp.float32),
                                           jnp.zeros((1,), jnp.int32))['params']}
  fitted = jax.device_get(fit(zero))

  def errors(params):
    deltas = pose_refinement.rigid_motions(params['camera']['rotation'], params['camera']['translation'])
    return pose_refinement.pose_errors(np.asarray(jnp.asarray(given, jnp.float32) @ deltas), true_poses)

  (rot0, trans0), (rot1, trans1) = errors(zero), errors(fitted)
  report = task.camera_model.report(fitted['camera'])
  print(f'\npose error of {n} cameras before: rotation mean {rot0.mean():.3f} max {rot0.max():.3f} deg, '
        f'translation mean {trans0.mean():.4f} max {trans0.max():.4f} units; after {steps} steps: rotation '
        f'mean {rot1.mean():.3f} max {rot1.max():.3f} deg, translation mean {trans1.mean():.4f} max '
        f'{trans1.max():.4f} units (photometric MSE {float(loss(zero)):.2e} -> {float(loss(fitted)):.2e}; '
        f'the deltas moved {float(report["pose_rotation_mean_deg"]):.2f} deg and '
        f'{float(report["pose_translation_mean"]):.3f} units on average; {time.perf_counter() - start:.1f} s)')
  np.testing.assert_allclose(rot0, 2.5, atol=1e-3)
  np.testing.assert_allclose(trans0, 0.1, atol=1e-4)
  assert rot1.mean() < rot0.mean() / 10 and rot1.max() < 0.5
  assert trans1.mean() < trans0.mean() / 5 and trans1.max() < 0.05
  # The report measures the deltas themselves: here nearly the perturbation undone.
  assert abs(float(report['pose_rotation_mean_deg']) - 2.5) < 0.3
  assert abs(float(report['pose_translation_mean']) - 0.1) < 0.03


def test_a_group_warm_up_ramps_its_learning_rate_from_zero():
  schedule = optim.learning_rate_schedule(override(default.get_config(), **{'train.lr': 1e-2}).train)
  ramp = optim.group_schedule(schedule, 0.1, 4)
  np.testing.assert_allclose([float(ramp(s)) for s in range(6)],
                             [0.1 * min(s / 4, 1.0) * float(schedule(s)) for s in range(6)], rtol=1e-6)
  assert float(ramp(0)) == 0.0
  # Through the optimiser: Adam's first update of the camera group is zero, its later ones grow to scale.
  config = override(default.get_config(), **{'train.lr': 1e-2, 'train.lr_decay_steps': 10**9})
  tx = optim.make_optimizer(config.train, (('^camera/', 0.1, 4),))
  params = {'params': {'w': jnp.ones(3)}, 'camera': {'rotation': jnp.ones(3)}}
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  state, moves = tx.init(params), []
  for _ in range(6):
    updates, state = tx.update(grads, state, params)
    moves.append((float(updates['params']['w'][0]), float(updates['camera']['rotation'][0])))
  np.testing.assert_allclose([m[0] for m in moves], -1e-2, rtol=1e-4)
  np.testing.assert_allclose([m[1] for m in moves], [-1e-3 * min(s / 4, 1.0) for s in range(6)], rtol=1e-4,
                             atol=1e-12)


@pytest.fixture(scope='module')
def refine_task(spheres_root):
  """(config, task, variables with random deltas) of a small NeRF with the 'refine' camera model."""
  config = _refine_config(spheres_root, **{'model.pose_warmup_steps': 100})
  task = tasks.make_task(config)
  params, state = jax.jit(task.init_variables)(jax.random.PRNGKey(0))  # eager: much slower
  n = len(task.scene.poses)
  deltas = {'rotation': 0.05 * jax.random.normal(jax.random.PRNGKey(1), (n, 3)),
            'translation': 0.1 * jax.random.normal(jax.random.PRNGKey(2), (n, 3))}
  return config, task, {**params, **state, 'camera': deltas}


def test_the_penalty_joins_the_loss_and_the_report_its_metrics(refine_task):
  config, task, variables = refine_task
  deltas = variables['camera']
  rotation, translation = np.linalg.norm(deltas['rotation'], axis=-1), np.linalg.norm(deltas['translation'],
                                                                                         axis=-1)
  expected = 1e-3 * rotation.mean() + 1e-2 * translation.mean()  # nerfacto's weights, the defaults
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(3), 30, plan)
  (total, aux), grads = jax.jit(jax.value_and_grad(task.loss, has_aux=True))(variables, batch, 30)
  assert float(aux['loss_pose']) == pytest.approx(expected, rel=1e-5)
  assert float(aux['pose_rotation_mean_deg']) == pytest.approx(np.degrees(rotation).mean(), rel=1e-5)
  assert float(aux['pose_rotation_max_deg']) == pytest.approx(np.degrees(rotation).max(), rel=1e-5)
  assert float(aux['pose_translation_mean']) == pytest.approx(translation.mean(), rel=1e-5)
  assert float(aux['pose_translation_max']) == pytest.approx(translation.max(), rel=1e-5)
  # The loss is the photometric one plus the penalty: doubling the deltas' penalty weights adds it again.
  heavier = task.camera_model.clone(rotation_penalty=2e-3, translation_penalty=2e-2)
  assert float(heavier.penalty(deltas)) == pytest.approx(2 * expected, rel=1e-5)
  original, task.camera_model = task.camera_model, heavier
  try:
    heavier_total, _ = jax.jit(lambda *args: task.loss(*args))(variables, batch, 30)  # a new trace
  finally:
    task.camera_model = original
  assert float(heavier_total - total) == pytest.approx(expected, rel=1e-3)
  # Its gradient reaches the deltas; the camera group has its warm-up.
  assert float(jnp.abs(grads['camera']['translation']).max()) > 0
  assert task.optimizer_groups() == (('^camera/', 0.1, 100),)
  # --mode network's report (Task.inspect, checks.check_network) says how far the poses moved.
  report, problems = task.inspect(variables, lambda v, rays: {'acc': np.full(len(rays.origins), 0.5)})
  assert problems == []
  for name in ('pose_rotation_mean_deg', 'pose_rotation_max_deg', 'pose_translation_mean',
               'pose_translation_max'):
    assert report[name] == round(float(aux[name]), 4)


def test_held_out_views_and_evaluation_use_the_given_poses(refine_task):
  _, task, variables = refine_task
  zeroed = {**variables, 'camera': jax.tree_util.tree_map(jnp.zeros_like, variables['camera'])}
  predict = jax.jit(task.predict)
  for split in ('val', 'train'):  # held-out views, and the training split's evaluation views
    view = next(task.eval_views(split, (1, 2, 1)))
    scene = task.split(split)
    rays = jax.tree_util.tree_map(lambda x: x[:256], view.inputs)
    given = task.image_rays(scene.poses[1], scene.intrinsics[1], scene.height, scene.width)
    np.testing.assert_array_equal(rays.origins, given.origins[:256])
    np.testing.assert_array_equal(rays.directions, given.directions[:256])
    assert np.all(rays.camera == (1 if split == 'train' else NO_CAMERA))
    np.testing.assert_array_equal(predict(variables, rays)['rgb'], predict(zeroed, rays)['rgb'])
  # ... while training rays of the same pixels do move with the deltas.
  batch = _all_pixels(task, task.scene.poses)
  moved = task.batch_rays(variables, batch)
  unmoved = task.batch_rays(zeroed, batch)
  assert float(jnp.abs(moved.origins - unmoved.origins).max()) > 0.05


@pytest.mark.parametrize('key, value, message', [
    ('model.pose_rotation_penalty', -1e-3, 'model.pose_rotation_penalty=-0.001 must be >= 0'),
    ('model.pose_translation_penalty', -0.01, 'model.pose_translation_penalty=-0.01 must be >= 0'),
    ('model.pose_lr_scale', 0.0, 'model.pose_lr_scale=0.0 must be > 0'),
    ('model.pose_warmup_steps', -5, 'model.pose_warmup_steps=-5 must be >= 0'),
])
def test_bad_refinement_settings_are_one_line_config_errors(key, value, message):
  config = override(default.get_config(), **{'task': 'nerf', 'model.camera': 'refine', key: value})
  with pytest.raises(ConfigError) as error:
    config_checks.validate(config)
  assert message in str(error.value) and '\n' not in str(error.value)
  # The same values with the given poses: the keys are 'refine''s alone, so nothing is said.
  config_checks.validate(override(config, **{'model.camera': 'fixed'}))
  assert 'refine' in cameras.CAMERA_MODELS


def test_optimizer_groups_with_a_bad_warm_up_are_config_errors():
  for group in (('encoding', 10.0, -1), ('encoding', 10.0, 2.5), ('encoding', 10.0, 1, 2)):
    config = override(default.get_config(), **{'train.optimizer.groups': (group,)})
    with pytest.raises(ConfigError, match=r'each entry is \(regex, lr scale > 0\)'):
      config_checks.validate(config)
  config_checks.validate(override(default.get_config(), **{'train.optimizer.groups': (('encoding', 10.0, 50),)}))


def test_a_hash_grid_field_gives_the_deltas_a_photometric_gradient(spheres_root):
  """A hash grid stops the gradient to its points (a density field's points are not trained); with a
  learned camera model it must not, or the translations learn nothing and the rotations only from the
  colour's view dependence (fern at 1,500 steps: 18.3 dB against 27.3 without refinement)."""
  config = _refine_config(spheres_root, **{'model.field': 'ngp', 'model.encoding': 'hashgrid',
                                           'model.dir_encoding': 'sh', 'model.hash_levels': 4,
                                           'model.hash_table_log2': 12, 'model.hash_finest': 64,
                                           'model.pose_rotation_penalty': 0.0,
                                           'model.pose_translation_penalty': 0.0})
  assert fields.build_encoding(config.model, 'position').position_gradient
  assert not fields.build_encoding(override(config, **{'model.camera': 'fixed'}).model, 'position').position_gradient
  task = tasks.make_task(config)
  params, state = jax.jit(task.init_variables)(jax.random.PRNGKey(0))
  plan = batching.BatchPlan.from_config(config.train)
  batch = task.sample_batch(jax.device_put(task.train_data()), jax.random.PRNGKey(3), 30, plan)
  grads = jax.jit(jax.grad(lambda v: task.loss(v, batch, 30)[0]))({**params, **state})
  assert float(jnp.abs(grads['camera']['translation']).max()) > 0
