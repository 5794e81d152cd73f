"""The docs are checked: every command they show parses, every config key, file, test and function they
name exists. (Whether the tutorial's commands then do what it says is checked by running them: see
docs/tutorial.md's last section.)"""

import importlib
import os
import re
import shlex
import sys

import pytest
from absl import flags

from configs import default
from nerf_jax import exercise, sfm
from nerf_jax.datasets import generated
from tests.conftest import REPO

sys.path.insert(0, REPO)
import main  # noqa: E402
from benchmarks import run as benchmarks  # noqa: E402
from docs.run_tutorial import code_blocks  # noqa: E402

DOCS = ['README.md'] + sorted(f'docs/{name}' for name in os.listdir(os.path.join(REPO, 'docs')) if name.endswith('.md'))
README_LINES = 250  # the front door: what nerf_jax is, the two commands, its results, where to go next
FILE_SUFFIXES = ('.json', '.png', '.mp4', '.gif', '.npz', '.md', '.txt', '.yaml', '.orbax-checkpoint-tmp')


def _read(doc):
  with open(os.path.join(REPO, doc)) as f:
    return f.read()


def shell_commands(markdown):
  """The commands in a markdown text's ```bash / ```sh / ``` blocks, as argument lists."""
  commands = []
  for body in code_blocks(markdown, ('', 'bash', 'sh', 'shell')):
    for line in body.replace('\\\n', ' ').splitlines():
      for part in re.split(r'&&|;', line):
        args = shlex.split(part, comments=True)
        if args:
          commands.append(args)
  return commands


def command_problem(args):
  """Why `args` is not a valid command of this project, or None. Commands of other tools pass."""
  if args[0] not in ('python', 'python3'):
    return None
  if args[1:2] == ['main.py']:
    argv = ['main.py', *args[2:]]
    values = flags.FlagValues()
    main.define_flags(values, argv)
    try:
      values(argv)
      values.config.task  # noqa: B018 (a config that failed to load raises on first use)
    except Exception as e:  # noqa: BLE001 (absl and ml_collections raise many kinds)
      return f'{" ".join(args)}: {type(e).__name__}: {e}'
    return None
  if args[1:3] == ['-m', 'nerf_jax.exercise']:
    parser, target = exercise.make_parser(), args[3:]
  elif args[1:3] == ['-m', 'nerf_jax.sfm']:
    parser, target = sfm, args[3:]
  elif args[1:3] == ['-m', 'nerf_jax.datasets.generated']:
    parser, target = generated, args[3:]
  elif args[1:2] == ['benchmarks/run.py']:
    parser, target = benchmarks.make_parser(), args[2:]
  elif args[1:3] == ['-m', 'pytest']:
    for arg in args[3:]:
      if arg.startswith('tests'):
        problem = reference_problem(arg)
        if problem:
          return problem
    return None
  else:
    return None
  try:
    parser.parse_args(target)  # an argparse parser, or a module with parse_args(argv)
  except SystemExit:
    return f'{" ".join(args)}: rejected by its argument parser'
  return None


def _config_key_exists(key):
  node = default.get_config()
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node:
      return False
    node = node[part]
  return True


def _attribute_exists(dotted):
  """nerf_jax.a.b.c, or a.b.c inside nerf_jax: the longest importable module, then attributes."""
  parts = dotted.split('.')
  if parts[0] == 'nerf_jax':
    parts = parts[1:]
  for split in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module('nerf_jax.' + '.'.join(parts[:split]))
    except ImportError:
      continue
    for attribute in parts[split:]:
      if not hasattr(obj, attribute):
        return False
      obj = getattr(obj, attribute)
    return True
  return False


def _is_nerf_jax_name(dotted):
  first = dotted.split('.')[0]
  return first == 'nerf_jax' or os.path.exists(os.path.join(REPO, 'nerf_jax', first + '.py')) or \
      os.path.isdir(os.path.join(REPO, 'nerf_jax', first))


def reference_problem(span):
  """Why a `backticked` span that names something of ours is wrong, or None."""
  span = span.strip()
  path, _, test = span.partition('::')
  if re.fullmatch(r'(nerf_jax|tests|configs|benchmarks|docs)/[\w/.-]+', path):
    if not os.path.exists(os.path.join(REPO, path)):
      return f'{span}: no such file'
    if test and not re.search(rf'^def {re.escape(test)}\(', _read(path), flags=re.M):
      return f'{span}: {path} has no function {test}'
    return None
  for key in re.findall(r'--config\.([\w.]+)=', span):
    if not _config_key_exists(key):
      return f'{span}: no config key {key}'
  if re.fullmatch(r'[a-z_]\w*(\.[A-Za-z_]\w*)+', span) and not span.endswith(FILE_SUFFIXES):
    if _config_key_exists(span):
      return None
    if _is_nerf_jax_name(span) and not _attribute_exists(span):
      return f'{span}: names neither a config key nor anything in nerf_jax'
  return None


@pytest.mark.parametrize('doc', DOCS)
def test_every_command_in_the_docs_is_valid(doc):
  commands = shell_commands(_read(doc))
  ours = [c for c in commands if c[0].startswith('python') and len(c) > 1 and
          (c[1] in ('main.py', 'benchmarks/run.py') or c[1:3] in (['-m', 'pytest'], ['-m', 'nerf_jax.exercise']))]
  if doc in ('README.md', 'docs/tutorial.md'):
    assert ours, f'{doc} shows none of our commands: is the block syntax right?'
  problems = [p for p in map(command_problem, commands) if p]
  assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('doc', DOCS)
def test_every_name_in_the_docs_exists(doc):
  text = re.sub(r'```.*?```', '', _read(doc), flags=re.S)  # commands are checked above
  spans = re.findall(r'`([^`\n]+)`', text)
  problems = [p for p in map(reference_problem, spans) if p]
  assert not problems, '\n'.join(problems)


def test_the_checks_catch_what_they_should():
  bad = ('```bash\npython main.py --config configs/lego_cpu.py --config.train.lrr=1\n'
         'python main.py --config configs/nope.py\npython main.py --config configs/demo.py --mode paint\n'
         'python -m nerf_jax.exercise start no_such_exercise\npython -m pytest -q tests/test_x.py\n```')
  assert all(command_problem(c) for c in shell_commands(bad))
  good = '```bash\npython main.py --config configs/lego_cpu.py --config.data.root=$DATA --mode render\n```'
  assert [command_problem(c) for c in shell_commands(good)] == [None]
  for span in ('rendering.volume_rendr', 'nerf_jax.sampling.sample_pd', 'train.lrr',
               'tests/test_sampling.py::test_nothing', 'nerf_jax/nothing.py', '--config.model.widht=3'):
    assert reference_problem(span), span
  for span in ('rendering.volume_render', 'datasets.blender.composite_on_white', 'train.lr',
               'eval.chunk', 'tests/test_sampling.py::test_no_gradient_through_sample_positions',
               'jax.random.split', 'metrics.json', 'types.Rays'):
    assert reference_problem(span) is None, span


def test_ci_runs_exactly_the_readmes_test_command():
  # CI must run what the README tells a user to run (the whole suite, on the same workers).
  readme = [' '.join(c) for c in shell_commands(_read('README.md')) if c[1:3] == ['-m', 'pytest'] and
            c[-1] == 'tests']
  with open(os.path.join(REPO, '.ci', 'run')) as f:
    ci = [line.strip() for line in f if 'pytest' in line and not line.lstrip().startswith('#')]
  assert len(readme) == 1 and ci == readme, (readme, ci)


def markdown_tables(markdown):
  """[(heading, [row cells, ...])] of the markdown's tables (header row first, no separator row), each
  under the nearest heading above it."""
  tables, heading, rows = [], None, None
  for line in markdown.splitlines() + ['']:
    if line.startswith('#'):
      heading = line.lstrip('#').strip()
    if line.startswith('|'):
      cells = [c.strip() for c in re.split(r'(?<!\\)\|', line.strip().strip('|'))]
      if rows is None:
        rows = []
        tables.append((heading, rows))
      if not set(''.join(cells)) <= set('-: '):
        rows.append(cells)
    else:
      rows = None
  return tables


def stale_results(readme, results):
  """Why rows of the README's results table are not the newest rows of docs/results.md's tables: each
  README row names its config, and that config's table there must start with a row of the same date and
  machine whose figure holds every decimal number of the README row's quality and training cells."""
  found = [t for t in markdown_tables(readme) if t[0] == 'What it reaches']
  if len(found) != 1:
    return ['the README has no single table under "What it reaches"']
  header, *rows = found[0][1]
  tables = dict(markdown_tables(results))
  problems = []
  for row in rows:
    cells = dict(zip(header, row))
    table = tables.get(cells.get('config'))
    if not table or len(table) < 2:
      problems.append(f'docs/results.md has no table under a heading {cells.get("config")}')
      continue
    newest = dict(zip(table[0], table[1]))
    if (cells.get('date'), cells.get('machine')) != (newest.get('date'), newest.get('machine')):
      problems.append(f'{cells["config"]}: the README says {cells.get("date")}, {cells.get("machine")}; the newest '
                      f'row of docs/results.md {newest.get("date")}, {newest.get("machine")}')
    for column in ('quality (held-out views)', 'training'):
      for number in re.findall(r'\d+\.\d+|\d+ min \d+ s|\d+ s\b', cells.get(column, '')):
        if number not in newest.get('figure', ''):
          problems.append(f'{cells["config"]}: {number} ({column}) is not in the newest row of docs/results.md')
  return problems


def test_the_readme_is_a_front_door():
  readme = _read('README.md')
  assert len(readme.splitlines()) <= README_LINES, f'README.md has {len(readme.splitlines())} lines'
  for page in ('docs/README.md', 'docs/results.md', 'docs/usage.md', 'docs/tutorial.md', 'docs/extending.md'):
    assert f']({page})' in readme, f'the README links to no {page}'


def test_the_readmes_results_are_the_newest_here():
  problems = stale_results(_read('README.md'), _read('docs/results.md'))
  assert not problems, '\n'.join(problems)


def test_the_results_check_catches_a_stale_row():
  readme = ('## What it reaches\n\n| config | quality (held-out views) | training | machine | date |\n|---|---|---|---|---|\n'
            '| `configs/a.py` | 30.1 dB | 2 min 5 s | avx2 | 2026-01-02 |\n')
  results = ('### `configs/a.py`\n\n| date | machine | command | figure |\n|---|---|---|---|\n'
             '| 2026-01-02 | avx2 | `x` | 30.1 dB in 2 min 5 s |\n| 2026-01-01 | avx2 | `x` | 29.0 dB |\n')
  assert stale_results(readme, results) == []
  assert len(stale_results(readme, results.replace('30.1', '30.2'))) == 1  # the figure moved on
  assert len(stale_results(readme, results.replace('2026-01-02', '2026-01-03'))) == 1  # a newer row
  assert len(stale_results(readme.replace('a.py', 'b.py'), results)) == 1  # no table for the config
