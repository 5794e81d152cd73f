"""Per-image appearance codes (nerf_jax/fields/appearance.py), the package feature every field gets: each
training camera's rays see its own code, rays of no training camera the codes' mean or zeros as
configured (and the evaluation output says which), gradients reach only the batch's cameras' codes, and
configs and checkpoints from before the keys are unchanged."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default, demo_fast, lego_surface
from nerf_jax import batching, checkpoint, config_checks, evaluate, fields, tasks, train
from nerf_jax.errors import ConfigError
from nerf_jax.fields import appearance
from nerf_jax.types import NO_CAMERA, Conditioning
from tests.conftest import override

FEATURES = 4
CAMERAS = 4
# configs/demo_fast.py (the hash-grid field on the occupancy sampler) at test sizes, codes on.
TINY = {'model.hash_levels': 2, 'model.hash_features': 2, 'model.hash_table_log2': 10,
        'model.hash_finest': 64, 'model.width': 16, 'model.depth': 1, 'model.geo_features': 3,
        'model.grid_resolution': 8, 'model.march_steps': 32, 'model.march_samples': (4, 16),
        'model.march_eval_samples': (4, 16), 'model.dtype': 'float32', 'data.input_ratio': 0.25,
        'eval.chunk': 256, 'model.appearance_features': FEATURES}


def tiny_config(root=None, **values):
  config = override(demo_fast.get_config(), **{**TINY, **values})
  return config if root is None else override(config, **{'data.root': root})


@pytest.fixture(scope='module')
def scene_task(spheres_root):
  """(config, task, fresh variables) of tiny_config on the generated scene (8 training views). The
  variables from a jitted init: the occupancy sampler's eager init takes ~20 s on 2 cores."""
  config = tiny_config(spheres_root, **{'train.batch_size': 8})
  task = tasks.make_task(config)
  params, state = jax.jit(task.init_variables)(jax.random.PRNGKey(0))
  return config, task, {**params, **state}


def field_inputs(cameras):
  """Points [R, 3 samples, 3], unit view directions [R, 3] and Conditioning of the cameras [R]."""
  rays = len(cameras)
  points = jax.random.uniform(jax.random.PRNGKey(0), (rays, 3, 3), minval=-0.8, maxval=0.8)
  viewdirs = jax.random.normal(jax.random.PRNGKey(1), (rays, 3))
  viewdirs = viewdirs / jnp.linalg.norm(viewdirs, axis=-1, keepdims=True)
  return points, viewdirs, Conditioning(camera=jnp.asarray(cameras, jnp.int32))


def with_codes(variables, codes):
  return {'params': {**variables['params'], 'conditioning': {'codes': codes}}}


@pytest.fixture(scope='module')
def ngp_fields():
  """{at_eval: (the ngp field with codes, jitted rgb of (variables, cond))}, and shared variables whose
  codes are large enough to move the colours."""
  made, variables = {}, None
  points, viewdirs, cond = field_inputs([0] * 6)
  for at_eval in appearance.AT_EVAL:
    model = tiny_config(**{'model.appearance_eval': at_eval}).model
    field = fields.build_field(model, fields.FieldScene(num_cameras=CAMERAS))
    assert type(field).__name__ == 'NgpField' and isinstance(field.conditioning, appearance.AppearanceCode)
    if variables is None:
      variables = jax.jit(field.init)(jax.random.PRNGKey(2), points, viewdirs, cond)
    made[at_eval] = jax.jit(lambda v, c, field=field: field.apply(v, points, viewdirs, c).rgb)
  assert variables['params']['conditioning']['codes'].shape == (CAMERAS, FEATURES)
  assert float(jnp.abs(variables['params']['conditioning']['codes']).max()) < 0.1  # initialised small
  codes = jax.random.normal(jax.random.PRNGKey(3), (CAMERAS, FEATURES))
  return made, with_codes(variables, codes)


def test_each_camera_gets_its_code_and_no_camera_the_mean_or_zero(ngp_fields):
  made, variables = ngp_fields
  codes = variables['params']['conditioning']['codes']
  # The module: a camera's row, else the rows' mean or zeros.
  cond = Conditioning(camera=jnp.array([2, NO_CAMERA, 0], jnp.int32))
  for at_eval, unseen in (('mean', codes.mean(0)), ('zero', jnp.zeros(FEATURES))):
    got = appearance.AppearanceCode(CAMERAS, FEATURES, at_eval).apply({'params': {'codes': codes}}, cond)
    np.testing.assert_allclose(got, jnp.stack([codes[2], unseen, codes[0]]), atol=1e-7)
  # The field's colours: changing camera 1's code changes only camera 1's rays; NO_CAMERA rays follow
  # the mean ('mean') or nothing ('zero').
  cameras = Conditioning(camera=jnp.array([0, 1, 2, 3, NO_CAMERA, NO_CAMERA], jnp.int32))
  moved = with_codes(variables, codes.at[1].add(1.0))
  for at_eval, rgb in made.items():
    before, after = rgb(variables, cameras), rgb(moved, cameras)
    changed = np.abs(np.asarray(after) - np.asarray(before)).max(axis=(1, 2))
    assert changed[1] > 1e-4, at_eval
    assert np.all(changed[[0, 2, 3]] == 0), at_eval
    if at_eval == 'zero':
      assert np.all(changed[4:] == 0)
    else:
      assert np.all(changed[4:] > 1e-5)
      # The mean code is the code a training camera whose row is that mean gets.
      mean_table = with_codes(variables, jnp.broadcast_to(codes.mean(0), codes.shape))
      as_camera_0 = rgb(mean_table, Conditioning(camera=jnp.zeros(6, jnp.int32)))
      np.testing.assert_allclose(before[4:], as_camera_0[4:], atol=1e-6)


def test_gradients_reach_only_the_batch_cameras_codes(ngp_fields, scene_task):
  made, variables = ngp_fields
  # The field: rays of cameras 0 and 2 train rows 0 and 2 only.
  loss = lambda v, cameras: jnp.sum(made['mean'](v, Conditioning(camera=jnp.asarray(cameras))))
  grad = jax.grad(loss)(variables, np.array([0, 2, 2, 0, 0, 2], np.int32))
  rows = np.abs(np.asarray(grad['params']['conditioning']['codes'])).max(axis=1)
  assert rows[0] > 0 and rows[2] > 0 and rows[1] == 0 and rows[3] == 0
  # NO_CAMERA rays (in no training batch) would train no row under 'zero', every row alike under 'mean'.
  codes = variables['params']['conditioning']['codes']
  no_camera = Conditioning(camera=jnp.full(3, NO_CAMERA))
  unseen = lambda at_eval: jax.grad(lambda c: jnp.sum(appearance.AppearanceCode(
      CAMERAS, FEATURES, at_eval).apply({'params': {'codes': c}}, no_camera)))(codes)
  assert float(jnp.abs(unseen('zero')).max()) == 0
  np.testing.assert_allclose(unseen('mean'), 3 / CAMERAS)
  # A training step's loss (the task's batch of pixels -> rays -> sampler -> field) likewise.
  config, task, fresh = scene_task
  plan = batching.BatchPlan.from_config(config.train)
  batch = jax.jit(lambda data, key: task.sample_batch(data, key, 100, plan))(task.train_data(),
                                                                             jax.random.PRNGKey(4))
  grads = jax.jit(jax.grad(lambda v: task.loss(v, batch, 100)[0]))(fresh)
  codes = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(grads)
           if 'conditioning' in jax.tree_util.keystr(path)]
  assert len(codes) == 1 and codes[0].shape == (task.num_cameras, FEATURES)
  seen = set(np.asarray(batch['image']).tolist())
  assert 0 < len(seen) < task.num_cameras
  reached = {i for i, row in enumerate(np.abs(np.asarray(codes[0])).max(axis=1)) if row > 0}
  assert reached and reached <= seen, (reached, seen)


def test_every_field_gets_the_codes():
  points, viewdirs, cond = field_inputs([0, NO_CAMERA])
  for config, field in ((default.get_config(), 'mlp'), (tiny_config(), 'ngp'),
                        (lego_surface.get_config(), 'sdf')):
    model = override(config, **{'model.field': field, 'model.appearance_features': FEATURES}).model
    built = fields.build_field(model, fields.FieldScene(num_cameras=CAMERAS))
    shapes = jax.eval_shape(built.init, jax.random.PRNGKey(0), points, viewdirs, cond)
    assert shapes['params']['conditioning']['codes'].shape == (CAMERAS, FEATURES), field


def test_config_rules_and_defaults():
  # A bad value: one line naming the key, its value and the choices.
  for key, value, message in (('model.appearance_eval', 'median',
                               r"model.appearance_eval='median' must be one of \['mean', 'zero'\]"),
                              ('model.appearance_features', -1,
                               r'model.appearance_features=-1 must be >= 0')):
    with pytest.raises(ConfigError, match=message) as raised:
      config_checks.validate(tiny_config(**{key: value}))
    assert '\n' not in str(raised.value)
  # Off by default: no conditioning module, so a default field's parameters are as before.
  config = default.get_config()
  assert config.model.appearance_features == 0 and config.model.appearance_eval == 'mean'
  assert fields.build_field(config.model, fields.FieldScene(num_cameras=3)).conditioning is None
  # A checkpoint's config.json from before the keys resumes: it reads as holding the defaults; the
  # held-out views' code may change on resume, the table's size may not.
  saved = json.loads(config.to_json())
  del saved['model']['appearance_features'], saved['model']['appearance_eval']
  assert checkpoint.config_differences(saved, json.loads(config.to_json())) == {}
  safe = checkpoint.safe_to_change()
  assert 'model.appearance_eval' in safe and 'model.appearance_features' not in safe
  # A field whose build takes no conditioning module cannot be given codes.
  fields.FIELDS.register('no_conditioning', lambda model_config, encoding, dir_encoding, scene: None)
  try:
    with pytest.raises(ConfigError, match=r"model.appearance_features=4 .* model.field='no_conditioning' "
                                          r'takes no conditioning module'):
      fields.build_field(tiny_config(**{'model.field': 'no_conditioning'}).model, fields.FieldScene(2))
  finally:
    fields.FIELDS.unregister('no_conditioning')


def test_evaluation_says_which_code_the_views_used(scene_task, spheres_root, tmp_path, capsys):
  config, task, fresh = scene_task
  evaluator = evaluate.Evaluator(task, config.eval.chunk)
  state = types.SimpleNamespace(step=0, variables=fresh)  # what _write_evaluation reads of a TrainState
  mean = f"appearance: mean of {task.num_cameras} training codes (model.appearance_eval='mean')"
  own = f"appearance: each training view's own code (of {task.num_cameras} training codes)"
  for split, said in (('val', mean), (task.train_split, own)):
    result = train._write_evaluation(evaluator, str(tmp_path), state, split, (0, 1, 1))
    printed = capsys.readouterr().out
    assert said in printed.splitlines(), printed
    with open(tmp_path / 'eval' / f'{split}_step0' / 'metrics.json') as f:
      assert json.load(f)['appearance'] == said.removeprefix('appearance: ') == result['appearance']
  assert appearance.describe(override(config, **{'model.appearance_eval': 'zero'}).model, 8, False) == (
      "zero code, none of the 8 training codes (model.appearance_eval='zero')")
  # Codes off: nothing said.
  assert task.eval_notes('val') and not tasks.make_task(
      tiny_config(spheres_root, **{'model.appearance_features': 0})).eval_notes('val')
