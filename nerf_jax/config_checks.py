"""Every rule a config value must meet, checked in one function before any work starts.

The config's types are checked by ml_collections (a locked config refuses a string for a float); these
are the rules of sense: positive rates and sizes, near < far, ratios in range, names that are
registered, sizes that split over the devices. `validate` reports every broken rule at once, in one
line, so a user fixes a command in one go.
"""

import re

from nerf_jax import batching, datasets, fields, losses, optim, tasks
from nerf_jax.errors import ConfigError
from nerf_jax.tasks.nerf import BATCHING, RENDER_PATHS, SAMPLERS

RENDER_FORMATS = ('mp4', 'gif')


def _range(problems, config, key, low=None, high=None, *, low_open=False, high_open=False, integer=False):
  section, name = key.split('.', 1)
  value = config[section]
  for part in name.split('.'):
    value = value[part]
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


def _views(problems, key, views):
  if (not isinstance(views, (tuple, list)) or len(views) != 3
      or not all(isinstance(v, int) for v in views) or views[0] < 0 or views[2] < 1):
    problems.append(f'{key}={views!r} must be (start, stop, step): start >= 0, stop -1 for the last, '
                    f'step >= 1')


def config_problems(config, num_devices=1):
  """Every rule `config` breaks, as messages naming the key, its value and what it must be."""
  p = []
  t, d, m, e = config.train, config.data, config.model, config.eval
  for key in ('train.steps', 'train.precrop_steps', 'train.eval_every', 'model.num_freqs',
              'model.dir_freqs', 'data.view', 'train.seed'):
    _range(p, config, key, 0, integer=True)
  for key in ('train.batch_size', 'train.microbatches', 'train.log_every', 'train.checkpoint_every',
              'train.keep_checkpoints', 'eval.chunk', 'eval.microbatches', 'model.width', 'model.depth',
              'model.width_view', 'model.num_fine', 'render.frames', 'mesh.chunk'):
    _range(p, config, key, 1, integer=True)
  _range(p, config, 'model.num_coarse', 3, integer=True)  # hierarchical sampling needs inner bins
  for key in ('model.hash_levels', 'model.hash_features', 'model.hash_coarsest', 'model.geo_features',
              'model.grid_resolution', 'model.grid_every', 'model.march_steps'):
    _range(p, config, key, 1, integer=True)
  # 16 levels of 2^24 rows are 2^28 row indices: well inside int32; more would overflow it.
  _range(p, config, 'model.hash_table_log2', 4, 24, integer=True)
  _range(p, config, 'model.sh_degree', 1, 4, integer=True)
  _range(p, config, 'model.grid_warmup_steps', 0, integer=True)
  _range(p, config, 'model.grid_decay', 0, 1)
  _range(p, config, 'model.grid_threshold', 0)
  if m.hash_finest < m.hash_coarsest:
    p.append(f'model.hash_finest={m.hash_finest} must be >= model.hash_coarsest={m.hash_coarsest}')
  if len(m.box) != 2 or not m.box[0] < m.box[1]:
    p.append(f'model.box={tuple(m.box)!r} must be (lo, hi) with lo < hi')
  if d.random_bkgd and not d.white_bkgd:
    p.append('data.random_bkgd=True swaps the white background of images composited onto white; it needs '
             'data.white_bkgd=True')
  if t.optimizer.weight_decay_pattern:
    try:
      re.compile(t.optimizer.weight_decay_pattern)
    except re.error as err:
      p.append(f'train.optimizer.weight_decay_pattern={t.optimizer.weight_decay_pattern!r} is not a regular '
               f'expression ({err})')
  if m.sampler not in SAMPLERS:
    p.append(f'model.sampler={m.sampler!r} must be one of {list(SAMPLERS)}')
  for key in ('march_samples', 'march_eval_samples'):
    if not m[key] or not all(isinstance(n, int) and n >= 1 for n in m[key]):
      p.append(f'model.{key}={tuple(m[key])!r} must be a non-empty tuple of positive integers')
  for key in ('train.lr', 'train.lr_decay_steps', 'train.lr_decay_rate', 'render.fps'):
    _range(p, config, key, 0, low_open=True)
  for key in ('train.progress_every_s', 'train.optimizer.clip_norm', 'train.optimizer.clip_value', 'train.optimizer.weight_decay',
              'train.optimizer.eps', 'render.radius'):
    _range(p, config, key, 0)
  for key in ('train.optimizer.b1', 'train.optimizer.b2'):
    _range(p, config, key, 0, 1, high_open=True)
  for key in ('data.input_ratio', 'train.precrop_frac'):
    _range(p, config, key, 0, 1, low_open=True)
  _range(p, config, 'data.near', 0)
  _range(p, config, 'data.factor', 1, integer=True)
  _range(p, config, 'data.llffhold', 0, integer=True)
  _range(p, config, 'model.density_noise', 0)
  if d.bounds not in datasets.BOUNDS:
    p.append(f'data.bounds={d.bounds!r} must be one of {list(datasets.BOUNDS)}')
  if d.lindisp and d.ndc:
    p.append('data.lindisp and data.ndc are both set; NDC depth is already linear in disparity: set '
             'data.lindisp=False')
  if d.lindisp and d.bounds == 'config' and d.near <= 0:
    p.append(f'data.lindisp samples in inverse depth and needs data.near > 0 (got {d.near})')
  if config.render.path not in RENDER_PATHS:
    p.append(f'render.path={config.render.path!r} must be one of {list(RENDER_PATHS)}')
  if d.near >= d.far:
    p.append(f'data.near={d.near} must be < data.far={d.far} (rays are sampled between them)')
  for key, name, registry in (('task', config.task, tasks.TASKS), ('data.format', d.format, datasets.FORMATS),
                              ('model.field', m.field, fields.FIELDS),
                              ('model.encoding', m.encoding, fields.ENCODINGS),
                              ('model.dir_encoding', m.dir_encoding, fields.ENCODINGS),
                              ('train.optimizer.name', t.optimizer.name, optim.OPTIMIZERS)):
    if name not in registry:
      p.append(f'{key}={name!r} must be one of {registry.names()}')
  for term in config.loss.terms:
    if term not in losses.LOSS_TERMS:
      p.append(f'loss.terms has {term!r}; loss terms are {losses.LOSS_TERMS.names()}')
  if d.batching not in BATCHING:
    p.append(f'data.batching={d.batching!r} must be one of {list(BATCHING)}')
  if m.dtype not in fields.COMPUTE_DTYPES:
    p.append(f'model.dtype={m.dtype!r} must be one of {sorted(fields.COMPUTE_DTYPES)}')
  bad_formats = [f for f in config.render.formats if f not in RENDER_FORMATS]
  if bad_formats or not config.render.formats:
    p.append(f'render.formats={tuple(config.render.formats)!r} must name some of {RENDER_FORMATS}')
  _range(p, config, 'mesh.resolution', 2, integer=True)
  _range(p, config, 'mesh.threshold', 0)
  _range(p, config, 'pointcloud.max_points', 0, integer=True)
  _range(p, config, 'pointcloud.min_opacity', 0, 1, high_open=True)
  box = config.mesh.box
  if box and (len(box) != 6 or not all(box[i] < box[i + 3] for i in range(3))):
    p.append(f'mesh.box={tuple(box)!r} must be empty or (xmin, ymin, zmin, xmax, ymax, zmax) with each min < max')
  _views(p, 'pointcloud.views', config.pointcloud.views)
  _views(p, 'eval.views', e.views)
  _views(p, 'eval.train_views', e.train_views)
  for group in t.optimizer.groups:
    if (not isinstance(group, (tuple, list)) or len(group) != 2 or not isinstance(group[0], str)
        or not isinstance(group[1], (int, float)) or group[1] <= 0):
      p.append(f'train.optimizer.groups holds {group!r}; each entry is (regex, lr scale > 0), e.g. '
               f'(("encoding", 10.0),)')
      continue
    try:
      re.compile(group[0])
    except re.error as err:
      p.append(f'train.optimizer.groups: {group[0]!r} is not a regular expression ({err})')
  if all(isinstance(v, int) and v >= 1 for v in (t.batch_size, t.microbatches, e.chunk, e.microbatches)):
    p += batching.size_problems(num_devices, batch_size=t.batch_size, microbatches=t.microbatches,
                                chunk=e.chunk, eval_microbatches=e.microbatches)
  return p


def validate(config, num_devices=1):
  """Raises one ConfigError listing every rule `config` breaks (config_problems), before any work."""
  problems = config_problems(config, num_devices)
  if problems:
    raise ConfigError(f'{len(problems)} config value(s) cannot work: ' + '; '.join(problems) + '.')
