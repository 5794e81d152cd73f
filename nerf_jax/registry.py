"""Named plug-ins: a table from a config value to what builds it.

Every extension point (tasks, dataset formats, encodings, fields, loss terms, optimisers) is one
Registry: a new kind is a file of its own plus one `register` line, and a wrong name is a ConfigError
that lists the choices and the config key that chose (a typo never becomes an ImportError at run time).
"""

from nerf_jax.errors import ConfigError


class Registry:
  """{name: entry} for one kind of plug-in, chosen by the config key `key`.

  REGISTRY.register('name', entry) adds an entry (or, without `entry`, decorates one);
  REGISTRY.get(name) returns it or raises ConfigError naming `key` and the registered names.
  """

  def __init__(self, kind, key):
    self.kind = kind  # what an entry is, for messages: 'dataset format'
    self.key = key  # the config key whose value names an entry: 'data.format'
    self._entries = {}

  def register(self, name, entry=None, *, replace=False):
    """Adds `entry` as `name`; as a decorator when `entry` is None. Returns the entry.

    A name already taken is refused unless `replace` (two plug-ins silently sharing a name would make
    a config mean different things depending on import order).
    """
    if entry is None:
      return lambda e: self.register(name, e, replace=replace)
    if name in self._entries and not replace:
      raise ValueError(f'{self.kind} {name!r} is already registered ({self._entries[name]!r}); pick '
                       f'another name or pass replace=True.')
    self._entries[name] = entry
    return entry

  def unregister(self, name):
    """Removes `name` (tests that register a toy plug-in take it out again)."""
    self._entries.pop(name, None)

  def get(self, name, key=None):
    """The entry called `name`; `key` names the config key that chose it when not self.key."""
    if name not in self._entries:
      raise ConfigError(f'Unknown {self.kind} {name!r}: {key or self.key} must be one of {self.names()} '
                        f'(a new {self.kind} is registered as in docs/extending.md).')
    return self._entries[name]

  def names(self):
    return sorted(self._entries)

  def __contains__(self, name):
    return name in self._entries
