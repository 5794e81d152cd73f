"""Exercise mode: blank a core function, write it yourself, let the tests say when it is right.

  python -m nerf_jax.exercise list                 # the exercises, their tests and checks
  python -m nerf_jax.exercise start volume_render  # its body becomes `raise NotImplementedError`
  python -m nerf_jax.exercise check volume_render  # its tests, then its --mode check
  python -m nerf_jax.exercise restore volume_render  # your file to <file>.attempt, ours from git

The solution is never kept beside the exercise: `start` needs the file unchanged since the last git
commit (so git holds our version) and `restore` takes it back from there. The tests check behaviour
(analytic scenes, known distributions, hand-computed values), not our code's exact arithmetic, so any
correct version passes. Walk-through: docs/tutorial.md, "Exercises".
"""

import argparse
import ast
import dataclasses
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Exercise:
  path: str  # the module's file, relative to the repository root
  function: str  # a top-level function in it
  tests: tuple  # pytest selections that check it
  command: tuple = ()  # a main.py check that uses it, run after the tests pass
  hint: str = ''


EXERCISES = {
    'frequency_encoding': Exercise(
        'nerf_jax/encoding.py', 'frequency_encoding', ('tests/test_encoding.py',),
        ('--config', 'configs/demo.py', '--config.train.steps=300'),
        'gamma(x) = [x, sin(2^k x) for k < L, cos(2^k x) for k < L], each block d wide.'),
    'rays_from_pixels': Exercise(
        'nerf_jax/cameras/pinhole.py', 'rays_from_pixels', ('tests/test_camera.py',),
        ('--config', 'configs/demo_nerf.py', '--mode', 'dataset'),
        'Poses are camera-to-world: rotate camera-space directions by R, origins are the translation; '
        'viewdirs are unit length.'),
    'volume_render': Exercise(
        # The core of volume rendering, densities to weights (rendering.volume_render is it, then
        # composite's weighted sums).
        'nerf_jax/rendering.py', 'weights_from_density',
        ('tests/test_rendering.py', 'tests/test_models.py::test_fresh_model_is_not_dead'),
        ('--config', 'configs/demo_nerf.py', '--mode', 'network'),
        'alpha_i = 1 - exp(-sigma_i delta_i), delta_i in world units (times |direction|), the last '
        'interval ending at far; T_i = exp(-sum_{j<i} sigma_j delta_j); w_i = T_i alpha_i; edges: '
        'interval_edges.'),
    'sample_pdf': Exercise(
        'nerf_jax/sampling.py', 'sample_pdf',
        ('tests/test_sampling.py',),
        ('--config', 'configs/demo_nerf.py', '--mode', 'network'),
        'Normalise the weights to a pdf, build the CDF from 0 to 1, find each u\'s bin and '
        'interpolate linearly inside it; stop the gradient.'),
    'stratified_samples': Exercise(
        'nerf_jax/sampling.py', 'stratified_samples', ('tests/test_sampling.py',),
        ('--config', 'configs/demo_nerf.py', '--mode', 'network'),
        'num_samples equal bins between near and far: their centres without a key, one uniform '
        'draw in each with one.'),
    'precrop_active': Exercise(
        'nerf_jax/batching.py', 'precrop_active', ('tests/test_batching.py',), (),
        'A pure function of the step: true for the first precrop_steps steps, then never again.'),
}


class ExerciseError(RuntimeError):
  """Why an exercise command cannot go ahead, and what to do."""


def _function_node(source, function, path):
  for node in ast.parse(source).body:
    if isinstance(node, ast.FunctionDef) and node.name == function:
      return node
  raise ExerciseError(f'{path} has no top-level function {function}.')


def blank_function(source, function, message, path='<source>'):
  """`source` with `function`'s body (everything after its docstring) replaced by a raise.

  The signature and docstring stay: they are the exercise's specification.
  """
  node = _function_node(source, function, path)
  body = node.body
  has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                   and isinstance(body[0].value.value, str))
  if has_docstring and len(body) == 1:
    raise ExerciseError(f'{function} in {path} has no body to blank (already started?).')
  first = body[1] if has_docstring else body[0]
  lines = source.splitlines(keepends=True)
  start = (body[0].end_lineno if has_docstring else first.lineno - 1)  # 0-based first removed line
  indent = ' ' * first.col_offset
  stub = f'{indent}raise NotImplementedError({message!r})\n'
  return ''.join(lines[:start]) + stub + ''.join(lines[node.end_lineno:])


def _git(*args):
  return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True)


def _committed(path):
  """Whether `path` is tracked and unchanged since the last commit."""
  if _git('rev-parse', '--is-inside-work-tree').returncode != 0:
    raise ExerciseError(f'{ROOT} is not a git checkout: exercises keep our version in git. '
                        f'Clone the repository (git clone ...) to use them.')
  tracked = _git('ls-files', '--error-unmatch', path).returncode == 0
  return tracked and _git('diff', '--quiet', 'HEAD', '--', path).returncode == 0


def start(name):
  exercise = EXERCISES[name]
  path = os.path.join(ROOT, exercise.path)
  if not _committed(exercise.path):
    raise ExerciseError(f'{exercise.path} has changes since the last commit (an exercise already '
                        f'started?). Finish it (check, restore) or commit your changes first.')
  with open(path) as f:
    source = f.read()
  message = (f'Exercise {name}: write {exercise.function} here. Hint: {exercise.hint} '
             f'Check with: python -m nerf_jax.exercise check {name}')
  with open(path, 'w') as f:
    f.write(blank_function(source, exercise.function, message, exercise.path))
  print(f'{exercise.path}: the body of {exercise.function} is yours to write (its docstring says what '
        f'it takes and returns).\nHint: {exercise.hint}\n'
        f'Check: python -m nerf_jax.exercise check {name}\n'
        f'Give up / compare: python -m nerf_jax.exercise restore {name}')


def check(name):
  """Runs the exercise's tests, then its main.py check; returns the exit status (0: right)."""
  exercise = EXERCISES[name]
  print(f'Tests: python -m pytest -q {" ".join(exercise.tests)}', flush=True)
  tests = subprocess.run([sys.executable, '-m', 'pytest', '-q', *exercise.tests], cwd=ROOT)
  if tests.returncode != 0:
    print(f'\nNot yet: the tests above fail. Each test\'s name and assertion say what {exercise.function} '
          f'got wrong; its docstring says what it must do.')
    return 1
  if exercise.command:
    # A fresh workdir each time: a finished run in a kept one would not train (or test) again.
    with tempfile.TemporaryDirectory(prefix=f'exercise_{name}_') as workdir:
      command = [sys.executable, 'main.py', *exercise.command, f'--workdir={workdir}']
      print(f'\nThe tests pass. Now the program: {" ".join(command[1:])}', flush=True)
      if subprocess.run(command, cwd=ROOT).returncode != 0:
        print('\nNot yet: the tests pass but the check above found a problem.')
        return 1
  print(f'\nRight: {exercise.function} passes its tests' + (' and its check.' if exercise.command else '.'))
  return 0


def _free_attempt_path(path):
  """path.attempt, or path.2.attempt, path.3.attempt, ...: the first that does not exist, so an
  earlier attempt is never overwritten."""
  candidate, n = f'{path}.attempt', 1
  while os.path.exists(candidate):
    n += 1
    candidate = f'{path}.{n}.attempt'
  return candidate


def restore(name):
  exercise = EXERCISES[name]
  path = os.path.join(ROOT, exercise.path)
  if _committed(exercise.path):
    raise ExerciseError(f'{exercise.path} is unchanged since the last commit: nothing to restore.')
  attempt = _free_attempt_path(path)
  with open(path) as f, open(attempt, 'w') as out:
    out.write(f.read())
  result = _git('checkout', 'HEAD', '--', exercise.path)
  if result.returncode != 0:
    raise ExerciseError(f'git could not restore {exercise.path}: {result.stderr.strip()}')
  kept = os.path.relpath(attempt, ROOT)
  print(f'Restored {exercise.path} from git; your version is in {kept} '
        f'(compare: diff {exercise.path} {kept}).')


def make_parser():
  parser = argparse.ArgumentParser(prog='python -m nerf_jax.exercise',
                                   description=__doc__.splitlines()[0])
  parser.add_argument('action', choices=['list', 'start', 'check', 'restore'])
  parser.add_argument('name', nargs='?', choices=sorted(EXERCISES))
  return parser


def main(argv=None):
  parser = make_parser()
  args = parser.parse_args(argv)
  if args.action == 'list':
    for name, e in EXERCISES.items():
      print(f'{name:<20} {e.path}:{e.function}\n{"":<20} tests: {" ".join(e.tests)}'
            + (f'\n{"":<20} check: python main.py {" ".join(e.command)}' if e.command else ''))
    return 0
  if args.name is None:
    parser.error(f'{args.action} needs an exercise name: one of {", ".join(EXERCISES)}')
  try:
    if args.action == 'check':
      return check(args.name)
    {'start': start, 'restore': restore}[args.action](args.name)
  except ExerciseError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
