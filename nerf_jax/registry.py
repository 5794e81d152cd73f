"""Named plug-ins: a table from a config value to what builds it.

Every extension point (tasks, dataset formats, encodings, fields, samplers, cameras, loss terms,
optimisers) is one Registry: a new kind is a file of its own plus one `register` line, and a wrong name
is a ConfigError that lists the choices and the config key that chose (a typo never becomes an
ImportError at run time). An entry brings what it needs of the config with it: its keys with their
defaults and comments, its rule of sense, the keys that may change when a run resumes. configs/default.py
gathers the keys (nerf_jax.plugins.add_defaults), config_checks runs the rules of the chosen entries,
and checkpoint reads a saved config that predates a key as holding its default.

A feature the shared code applies to whichever entry is chosen (a per-image appearance code, which
fields.build_field gives every field) owns its keys in the same way, through `share`: registry-wide keys
with their rule, gathered, checked and resumed like an entry's, whatever entry the config chooses.
"""

from typing import Any, Callable, NamedTuple

from nerf_jax.errors import ConfigError


class Plugin(NamedTuple):
  """A registered entry and what it owns.

  entry: what `get` returns (a build function, a class); keys: {'model.grid_every': (default, comment)},
  the config keys only this entry reads; check: config -> [problem message] (the entry's rules of sense,
  run when the config chooses it); safe: keys of `keys` a resumed run may change (they change no
  state's shape or meaning); needs: names this entry needs from others (a loss term: the RenderResult
  fields or extras it reads, checked against what the sampler renders before the first step).
  """
  entry: Any
  keys: dict
  check: Callable
  safe: tuple
  needs: tuple


def _no_problems(config):
  del config
  return []


class Registry:
  """{name: Plugin} for one kind of plug-in, chosen by the config key `key` (and `also`).

  REGISTRY.register('name', entry) adds an entry (or, without `entry`, decorates one);
  REGISTRY.get(name) returns it or raises ConfigError naming `key` and the registered names.
  """

  def __init__(self, kind, key, also=()):
    self.kind = kind  # what an entry is, for messages: 'dataset format'
    self.key = key  # the config key whose value names an entry: 'data.format'
    self.config_keys = (key, *also)  # every key naming an entry (an encoding: points' and directions')
    self._entries = {}
    self._shared = {}  # {feature name: Plugin} of the registry-wide keys (`share`)

  def register(self, name, entry=None, *, keys=None, check=None, safe=(), needs=(), replace=False):
    """Adds `entry` as `name` with what it owns (Plugin); as a decorator when `entry` is None. Returns
    the entry.

    A name already taken is refused unless `replace` (two plug-ins silently sharing a name would make
    a config mean different things depending on import order).
    """
    if entry is None:
      return lambda e: self.register(name, e, keys=keys, check=check, safe=safe, needs=needs,
                                     replace=replace)
    if name in self._entries and not replace:
      raise ValueError(f'{self.kind} {name!r} is already registered ({self._entries[name].entry!r}); pick '
                       f'another name or pass replace=True.')
    unknown_safe = set(safe) - set(keys or {})
    if unknown_safe:
      raise ValueError(f'{self.kind} {name!r}: safe keys {sorted(unknown_safe)} are not among its keys.')
    self._entries[name] = Plugin(entry, dict(keys or {}), check or _no_problems, tuple(safe), tuple(needs))
    return entry

  def share(self, name, *, keys, check=None, safe=()):
    """Registers keys that belong to the registry, not to one entry: `name` (a feature the shared code
    applies to every entry, e.g. the fields' 'appearance' codes) owns `keys` ({key: (default, comment)}),
    its rule `check` runs whatever entry the config chooses, `safe` as in `register`. Returns None."""
    unknown_safe = set(safe) - set(keys)
    if unknown_safe:
      raise ValueError(f'{self.kind} feature {name!r}: safe keys {sorted(unknown_safe)} are not among its '
                       f'keys.')
    if name in self._shared:
      raise ValueError(f'{self.kind} feature {name!r} is already shared.')
    self._shared[name] = Plugin(None, dict(keys), check or _no_problems, tuple(safe), ())

  def shared(self):
    """{feature name: Plugin} of the registry-wide keys (`share`): entry None, keys, check, safe."""
    return dict(self._shared)

  def unregister(self, name):
    """Removes `name` (tests that register a toy plug-in take it out again)."""
    self._entries.pop(name, None)

  def get(self, name, key=None):
    """The entry called `name`; `key` names the config key that chose it when not self.key."""
    return self.plugin(name, key).entry

  def plugin(self, name, key=None):
    """The Plugin record of `name` (its entry, keys, rule, needs)."""
    if name not in self._entries:
      raise ConfigError(f'Unknown {self.kind} {name!r}: {key or self.key} must be one of {self.names()} '
                        f'(a new {self.kind} is registered as in docs/extending.md).')
    return self._entries[name]

  def chosen(self, config):
    """[(config key, name)] of the entries `config` chooses (a key may hold a name or a list of names)."""
    chosen = []
    for key in self.config_keys:
      value = config
      for part in key.split('.'):
        value = value[part]
      names = value if isinstance(value, (tuple, list)) else (value,)
      chosen += [(key, name) for name in names]
    return chosen

  def plugins(self):
    """{name: Plugin} of every entry, in registration order."""
    return dict(self._entries)

  def names(self):
    return sorted(self._entries)

  def __contains__(self, name):
    return name in self._entries
