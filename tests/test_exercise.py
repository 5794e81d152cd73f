"""Exercise mode, and proof that the tests guarding each pitfall fail when the pitfall comes back."""

import ast
import importlib
import os
import shutil
import subprocess
import sys

import pytest

from nerf_jax import exercise

ROOT = exercise.ROOT


@pytest.mark.parametrize('name', sorted(exercise.EXERCISES))
def test_blanking_keeps_the_signature_and_docstring_and_nothing_else_changes(name):
  e = exercise.EXERCISES[name]
  with open(os.path.join(ROOT, e.path)) as f:
    source = f.read()
  blanked = exercise.blank_function(source, e.function, 'write it', e.path)
  before, after = ast.parse(source), ast.parse(blanked)
  old = {n.name: n for n in before.body if isinstance(n, ast.FunctionDef)}
  new = {n.name: n for n in after.body if isinstance(n, ast.FunctionDef)}
  assert old.keys() == new.keys()
  fn = new[e.function]
  assert ast.dump(fn.args) == ast.dump(old[e.function].args)
  assert ast.get_docstring(fn) == ast.get_docstring(old[e.function]) and ast.get_docstring(fn)
  assert len(fn.body) == 2 and isinstance(fn.body[1], ast.Raise)
  for other in old.keys() - {e.function}:  # every other function is untouched
    assert ast.dump(old[other]) == ast.dump(new[other])
  for test in e.tests:  # the tests it names exist
    path, _, test_name = test.partition('::')
    assert os.path.exists(os.path.join(ROOT, path)), test
    if test_name:
      with open(os.path.join(ROOT, path)) as f:
        assert f'def {test_name}(' in f.read(), test


def _git(cwd, *args):
  subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args], cwd=cwd, check=True,
                 capture_output=True)


def _run(cwd, *args):
  result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
  return result.returncode, result.stdout + result.stderr


def test_start_check_restore_in_a_checkout(tmp_path):
  # A copy of the repository as a student would have it: a git checkout.
  repo = tmp_path / 'repo'
  for part in ('nerf_jax', 'tests', 'configs', 'main.py'):
    source = os.path.join(ROOT, part)
    copy = shutil.copytree if os.path.isdir(source) else shutil.copy
    copy(source, repo / part, **({'ignore': shutil.ignore_patterns('__pycache__')}
                                if copy is shutil.copytree else {}))
  _git(repo, 'init', '-q')
  _git(repo, 'add', '.')
  _git(repo, 'commit', '-qm', 'start')
  ours = (repo / 'nerf_jax' / 'rendering.py').read_text()

  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'start', 'volume_render')
  assert code == 0, out
  assert 'raise NotImplementedError' in (repo / 'nerf_jax' / 'rendering.py').read_text()
  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'start', 'volume_render')
  assert code == 1 and 'has changes since the last commit' in out  # a second start loses nothing

  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'check', 'volume_render')
  assert code == 1 and 'NotImplementedError' in out and 'Not yet' in out, out[-2000:]

  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'restore', 'volume_render')
  assert code == 0, out
  assert (repo / 'nerf_jax' / 'rendering.py').read_text() == ours
  assert 'NotImplementedError' in (repo / 'nerf_jax' / 'rendering.py.attempt').read_text()
  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'restore', 'volume_render')
  assert code == 1 and 'nothing to restore' in out, out
  # A second attempt is kept beside the first, never over it.
  _run(repo, '-m', 'nerf_jax.exercise', 'start', 'volume_render')
  code, out = _run(repo, '-m', 'nerf_jax.exercise', 'restore', 'volume_render')
  assert code == 0 and 'rendering.py.2.attempt' in out, out
  assert (repo / 'nerf_jax' / 'rendering.py.attempt').exists()
  assert (repo / 'nerf_jax' / 'rendering.py').read_text() == ours
  code, out = _run(repo, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/test_rendering.py')
  assert code == 0, out[-2000:]


# Each pitfall of DEVELOPERS.md, put back into the code: (module, our line, the mistake, the test that
# must then fail). The tests are behavioural, so these are the mistakes a student's version would make.
PITFALLS = {
    'no white background': (
        'nerf_jax.rendering', 'colour = colour + (1.0 - acc[..., None])', 'colour = colour',
        'tests.test_rendering', 'test_white_background_where_nothing_is_hit'),
    'RGBA composited as rgb * a (black background)': (
        'nerf_jax.datasets.blender', 'return rgb * alpha + (1.0 - alpha)', 'return rgb * alpha',
        'tests.test_datasets', 'test_white_compositing_of_rgba'),
    'world-to-camera reading of the pose': (
        'nerf_jax.cameras.pinhole', "'...ij,...j->...i'", "'...ji,...j->...i'",
        'tests.test_camera', 'test_ray_through_a_known_point_hits_its_pixel'),
    'un-normalised view directions': (
        'nerf_jax.cameras.pinhole', 'viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)',
        'viewdirs = directions', 'tests.test_camera', 'test_viewdirs_are_unit_and_directions_keep_z_minus_one'),
    'distances along un-normalised directions ignored': (
        'nerf_jax.rendering', 'deltas = intervals * jnp.linalg.norm(directions, axis=-1, keepdims=True)',
        'deltas = intervals', 'tests.test_rendering', 'test_constant_density_slab_gives_analytic_transmittance'),
    'ReLU density that starts negative (dead network)': (
        'nerf_jax.fields.mlp', 'sigma = nn.softplus(raw_sigma + self.density_bias)',
        'sigma = nn.relu(raw_sigma - 1.0)', 'tests.test_models', 'test_fresh_model_is_not_dead'),
    'precrop that never switches off': (
        'nerf_jax.batching', 'return step < precrop_steps', 'return precrop_steps > 0',
        'tests.test_batching', 'test_precrop_is_on_before_its_step_and_off_after'),
    'randint batches with duplicates': (
        'nerf_jax.batching', 'return permute(jax.random.fold_in(key, epoch), positions, n)',
        'return jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)',
        'tests.test_batching', 'test_epoch_batches_are_disjoint_and_cover_the_epoch'),
    'sample_pdf ignoring the weights': (
        'nerf_jax.sampling', 'pdf = weights / jnp.sum(weights, axis=-1, keepdims=True)',
        'pdf = jnp.ones_like(weights) / weights.shape[-1]',
        'tests.test_sampling', 'test_sample_pdf_is_the_inverse_cdf_of_a_known_histogram'),
}


def _with_source(module_name, source, test_module, monkeypatch):
  """Runs `source` as module_name's code and points the module (and the test module's direct imports)
  at its functions and classes, so the tests exercise it."""
  module = importlib.import_module(module_name)
  namespace = {'__name__': module_name}
  exec(compile(source, module.__file__, 'exec'), namespace)
  tests = importlib.import_module(test_module)
  for name, value in list(vars(module).items()):
    if callable(value) and getattr(value, '__module__', None) == module_name:
      # Callers look names up in the module; tests that imported a name directly hold their own.
      monkeypatch.setattr(module, name, namespace[name])
      if getattr(tests, name, None) is value:
        monkeypatch.setattr(tests, name, namespace[name])
  return tests


@pytest.mark.parametrize('pitfall', sorted(PITFALLS))
def test_the_guarding_test_fails_when_the_pitfall_is_put_back(pitfall, monkeypatch):
  module_name, ours, mistake, test_module, test_name = PITFALLS[pitfall]
  with open(importlib.import_module(module_name).__file__) as f:
    source = f.read()
  assert source.count(ours) == 1, f'{module_name} no longer holds {ours!r}: update PITFALLS'
  with monkeypatch.context() as patch:  # control: our code, loaded the same way, passes
    getattr(_with_source(module_name, source, test_module, patch), test_name)()
  with monkeypatch.context() as patch:
    test = getattr(_with_source(module_name, source.replace(ours, mistake), test_module, patch), test_name)
    with pytest.raises(AssertionError):
      test()
