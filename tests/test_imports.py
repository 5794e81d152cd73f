"""No import cycle anywhere in nerf_jax: every import (top-level or inside a function) is an edge.

Run it as a script for the graph's cycles and each module's imports: python tests/test_imports.py
"""

import ast
import os
import sys

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
  for module in sorted(graph):
    print(f'{module}: {", ".join(sorted(graph[module])) or "-"}')
  cycles = find_cycles(graph)
  print('\n' + ('\n'.join('cycle: ' + ' -> '.join(c) for c in cycles) if cycles else 'No import cycle.'))
  sys.exit(1 if cycles else 0)
