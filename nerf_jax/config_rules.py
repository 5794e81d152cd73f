"""The rules of sense a config value must meet, as small functions that append a message naming the key,
its value and what it must be. config_checks applies the shared keys' rules; a plug-in's own rule
(registry.Plugin.check) uses the same functions on its own keys."""


def lookup(config, key):
  """config['model']['grid_every'] for key 'model.grid_every'."""
  value = config
  for part in key.split('.'):
    value = value[part]
  return value


def in_range(problems, config, key, low=None, high=None, *, low_open=False, high_open=False, integer=False):
  """Appends a message to `problems` unless config's `key` is in [low, high] ((low, high with *_open)
  and, with `integer`, an int."""
  value = lookup(config, key)
  if integer and (not isinstance(value, int) or isinstance(value, bool)):
    problems.append(f'{key}={value!r} must be an integer')
    return
  below = low is not None and (value <= low if low_open else value < low)
  above = high is not None and (value >= high if high_open else value > high)
  if below or above:
    lo = '' if low is None else f'{"(" if low_open else "["}{low}'
    hi = '' if high is None else f'{high}{")" if high_open else "]"}'
    where = f'in {lo}, {hi}' if low is not None and high is not None else (
        f'{">" if low_open else ">="} {low}' if low is not None else f'{"<" if high_open else "<="} {high}')
    problems.append(f'{key}={value!r} must be {where}')


def positive_ints(problems, config, key):
  """Appends a message unless config's `key` is a non-empty tuple of positive integers."""
  value = lookup(config, key)
  if not value or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value):
    problems.append(f'{key}={tuple(value)!r} must be a non-empty tuple of positive integers')


def one_of(problems, config, key, choices):
  """Appends a message unless config's `key` is one of `choices`."""
  value = lookup(config, key)
  if value not in choices:
    problems.append(f'{key}={value!r} must be one of {list(choices)}')


def views(problems, key, value):
  """Appends a message unless `value` is a (start, stop, step) view selection."""
  if (not isinstance(value, (tuple, list)) or len(value) != 3
      or not all(isinstance(v, int) for v in value) or value[0] < 0 or value[2] < 1):
    problems.append(f'{key}={value!r} must be (start, stop, step): start >= 0, stop -1 for the last, '
                    f'step >= 1')
