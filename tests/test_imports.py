"""The house drawn from the imports: no import cycle anywhere in nerf_jax (every import, top-level or
inside a function, is an edge), no module importing one of a layer above its own, and the pure math
importing nothing but jax, numpy and the standard library.

Run it as a script for each layer's modules, each module's imports and the graph's cycles:
python tests/test_imports.py
"""

import ast
import fnmatch
import os
import sys

# The layers, lowest first: a module may import its own layer's and those below, never one above. A
# pattern with * takes a package and everything in it; the first layer whose pattern matches wins.
LAYERS = [
    ('foundation', ['nerf_jax', 'nerf_jax.errors', 'nerf_jax.types', 'nerf_jax.registry', 'nerf_jax.config_rules',
                    'nerf_jax.precision', 'nerf_jax.progress', 'nerf_jax.flops', 'nerf_jax.summary',
                    'nerf_jax.exercise']),
    ('pure math', ['nerf_jax.cameras.pinhole', 'nerf_jax.cameras.rotations', 'nerf_jax.encoding',
                   'nerf_jax.sampling', 'nerf_jax.rendering', 'nerf_jax.occupancy_grid', 'nerf_jax.metrics']),
    ('plug-in families', ['nerf_jax.cameras*', 'nerf_jax.fields*', 'nerf_jax.samplers*', 'nerf_jax.losses*',
                          'nerf_jax.datasets*', 'nerf_jax.optim', 'nerf_jax.lpips', 'nerf_jax.batching',
                          'nerf_jax.parallel', 'nerf_jax.sfm']),
    ('rendering a model', ['nerf_jax.evaluate', 'nerf_jax.export', 'nerf_jax.video']),
    ('tasks', ['nerf_jax.tasks*']),
    ('the run', ['nerf_jax.plugins', 'nerf_jax.config_checks', 'nerf_jax.checkpoint', 'nerf_jax.workdir_lock',
                 'nerf_jax.checks', 'nerf_jax.train', 'nerf_jax.viewer*']),
]
# What the pure math may import besides the foundation: jax, numpy and the standard library's.
PURE_IMPORTS = {'jax', 'numpy', 'math', 'functools', 'dataclasses', 'typing'}

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'nerf_jax')


def module_name(path, package_dir=PACKAGE):
  """'nerf_jax.datasets.blender' for .../nerf_jax/datasets/blender.py; packages by their __init__."""
  relative = os.path.relpath(path, os.path.dirname(package_dir))[:-len('.py')].split(os.sep)
  if relative[-1] == '__init__':
    relative = relative[:-1]
  return '.'.join(relative)


def import_graph(package_dir=PACKAGE):
  """{module: set of nerf_jax modules it imports}, from the source of every .py file under package_dir.

  `from a.b import c` imports a.b and, where a.b.c is a module, a.b.c; relative imports are resolved.
  Imports anywhere in a file count, inside functions too: a cycle through a function-level import is
  still a cycle, only deferred to the first call.
  """
  files = {}
  for folder, _, names in os.walk(package_dir):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        files[module_name(path, package_dir)] = path
  root = os.path.basename(package_dir)
  graph = {}
  for module, path in files.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    is_package = path.endswith('__init__.py')
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:  # relative: from the module's package, up level - 1 more
          parts = module.split('.') if is_package else module.split('.')[:-1]
          parts = parts[:len(parts) - (node.level - 1)]
          base = '.'.join(parts + ([base] if base else []))
        targets.add(base)
        targets.update(f'{base}.{alias.name}' for alias in node.names)
    graph[module] = {t for t in targets if t in files and t != module and t.split('.')[0] == root}
  return graph


def layer_of(module, layers=LAYERS):
  """The index in `layers` of the first layer with a pattern matching `module`, or None."""
  for index, (_, patterns) in enumerate(layers):
    for pattern in patterns:
      if module == pattern or (pattern.endswith('*') and fnmatch.fnmatch(module, pattern[:-1] + '*') and
                               (module == pattern[:-1] or module.startswith(pattern[:-1] + '.'))):
        return index
  return None


def upward_imports(graph, layers=LAYERS):
  """[(module, its layer's name, imported module, that layer's name)] for every import of a higher
  layer's module, and [(module, None, ...)] for modules no layer names."""
  found = []
  for module in sorted(graph):
    own = layer_of(module, layers)
    if own is None:
      found.append((module, None, None, None))
      continue
    for target in sorted(graph[module]):
      theirs = layer_of(target, layers)
      if theirs is not None and theirs > own:
        found.append((module, layers[own][0], target, layers[theirs][0]))
  return found


def outside_imports(path):
  """The top-level names of the modules outside nerf_jax a file imports (anywhere in it)."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name.split('.')[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and not node.level:
      names.add((node.module or '').split('.')[0])
  return names - {'nerf_jax'}


def find_cycles(graph):
  """Every elementary cycle reachable by depth-first search, each once, as a list of modules."""
  cycles, seen = [], set()
  state = {}  # module -> 'open' while on the current path, 'done' after

  def visit(module, path):
    state[module] = 'open'
    path.append(module)
    for target in sorted(graph.get(module, ())):
      if state.get(target) == 'open':
        cycle = path[path.index(target):]
        key = frozenset(cycle)
        if key not in seen:
          seen.add(key)
          cycles.append(cycle + [target])
      elif target not in state:
        visit(target, path)
    path.pop()
    state[module] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [])
  return cycles


def test_nerf_jax_has_no_import_cycle():
  graph = import_graph()
  assert 'nerf_jax.train' in graph and 'nerf_jax.tasks.nerf' in graph  # the walk found the package
  cycles = find_cycles(graph)
  assert not cycles, 'import cycles:\n' + '\n'.join(' -> '.join(c) for c in cycles)


def test_no_module_imports_a_layer_above_its_own():
  problems = upward_imports(import_graph())
  unplaced = [m for m, layer, _, _ in problems if layer is None]
  assert not unplaced, f'modules in no layer of tests/test_imports.py LAYERS (add them where they belong): {unplaced}'
  assert not problems, 'upward imports:\n' + '\n'.join(f'{m} ({a}) imports {t} ({b})' for m, a, t, b in problems)


def test_the_pure_math_imports_only_jax_numpy_and_the_foundation():
  graph = import_graph()
  pure = [m for m in graph if layer_of(m) == 1]
  assert 'nerf_jax.sampling' in pure and 'nerf_jax.cameras.pinhole' in pure
  for module in pure:
    path = os.path.join(os.path.dirname(PACKAGE), *module.split('.')) + '.py'
    assert outside_imports(path) <= PURE_IMPORTS, (module, outside_imports(path) - PURE_IMPORTS)
    assert all(layer_of(t) <= 1 for t in graph[module]), (module, graph[module])


def test_the_layer_check_finds_an_upward_import():
  graph = {'pkg.low': {'pkg.high'}, 'pkg.high': {'pkg.low'}, 'pkg.stray': set()}
  layers = [('low', ['pkg.low']), ('high', ['pkg.high*'])]
  assert upward_imports(graph, layers) == [('pkg.low', 'low', 'pkg.high', 'high'), ('pkg.stray', None, None, None)]
  assert layer_of('pkg.high.part', layers) == 1 and layer_of('pkg.higher', layers) is None


def test_the_cycle_check_finds_a_cycle(tmp_path):
  # The check itself can fail: a package whose modules import each other (one inside a function).
  package = tmp_path / 'pkg'
  package.mkdir()
  (package / '__init__.py').write_text('')
  (package / 'a.py').write_text('from pkg import b\n')
  (package / 'b.py').write_text('def f():\n  from pkg.c import thing\n')
  (package / 'c.py').write_text('import pkg.a\nthing = 1\n')
  (package / 'd.py').write_text('from . import a\n')
  graph = import_graph(str(package))
  assert graph['pkg.d'] == {'pkg', 'pkg.a'}
  assert [set(c) for c in find_cycles(graph)] == [{'pkg.a', 'pkg.b', 'pkg.c'}]


if __name__ == '__main__':
  graph = import_graph()
  for index, (name, _) in enumerate(LAYERS):
    print(f'{index} {name}: {", ".join(sorted(m for m in graph if layer_of(m) == index))}')
  print()
  for module in sorted(graph):
    print(f'{module}: {", ".join(sorted(graph[module])) or "-"}')
  cycles = find_cycles(graph)
  print('\n' + ('\n'.join('cycle: ' + ' -> '.join(c) for c in cycles) if cycles else 'No import cycle.'))
  sys.exit(1 if cycles else 0)
