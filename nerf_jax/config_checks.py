"""Every rule a config value must meet, checked in one function before any work starts.

The config's types are checked by ml_collections (a locked config refuses a string for a float); these
are the rules of sense: positive rates and sizes, near < far, ratios in range, names that are
registered, sizes that split over the devices. `validate` reports every broken rule at once, in one
line, so a user fixes a command in one go.
"""

import re

from nerf_jax import batching, datasets, fields, plugins, precision
from nerf_jax.config_rules import in_range as _range, views as _views
from nerf_jax.errors import ConfigError

RENDER_FORMATS = ('mp4', 'gif')


def config_problems(config, num_devices=1):
  """Every rule `config` breaks, as messages naming the key, its value and what it must be."""
  p = []
  t, d, m, e = config.train, config.data, config.model, config.eval
  for key in ('train.steps', 'train.precrop_steps', 'train.eval_every', 'data.view', 'train.seed'):
    _range(p, config, key, 0, integer=True)
  for key in ('train.batch_size', 'train.microbatches', 'train.log_every', 'train.checkpoint_every',
              'train.keep_checkpoints', 'eval.chunk', 'eval.microbatches', 'model.width', 'model.depth',
              'render.frames', 'mesh.chunk'):
    _range(p, config, key, 1, integer=True)
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
  if d.bounds not in datasets.BOUNDS:
    p.append(f'data.bounds={d.bounds!r} must be one of {list(datasets.BOUNDS)}')
  if d.lindisp and d.ndc:
    p.append('data.lindisp and data.ndc are both set; NDC depth is already linear in disparity: set '
             'data.lindisp=False')
  if d.lindisp and d.bounds == 'config' and d.near <= 0:
    p.append(f'data.lindisp samples in inverse depth and needs data.near > 0 (got {d.near})')
  if d.near >= d.far:
    p.append(f'data.near={d.near} must be < data.far={d.far} (rays are sampled between them)')
  p += plugins.problems(config)  # unknown names, and the rules of the chosen plug-ins
  if m.dtype not in (*fields.COMPUTE_DTYPES, precision.AUTO):
    p.append(f'model.dtype={m.dtype!r} must be one of {sorted(fields.COMPUTE_DTYPES) + [precision.AUTO]}')
  bad_formats = [f for f in config.render.formats if f not in RENDER_FORMATS]
  if bad_formats or not config.render.formats:
    p.append(f'render.formats={tuple(config.render.formats)!r} must name some of {RENDER_FORMATS}')
  _range(p, config, 'mesh.resolution', 2, integer=True)
  _range(p, config, 'mesh.threshold', 0)
  _range(p, config, 'mesh.min_component', 0, 1)
  _range(p, config, 'pointcloud.max_points', 0, integer=True)
  _range(p, config, 'pointcloud.min_opacity', 0, 1, high_open=True)
  box = config.mesh.box
  if box and (len(box) != 6 or not all(box[i] < box[i + 3] for i in range(3))):
    p.append(f'mesh.box={tuple(box)!r} must be empty or (xmin, ymin, zmin, xmax, ymax, zmax) with each min < max')
  _views(p, 'pointcloud.views', config.pointcloud.views)
  v = config.view
  _range(p, config, 'view.port', 1, 65535, integer=True)
  for key in ('view.chunk', 'view.thumbnail', 'view.max_cameras'):
    _range(p, config, key, 1, integer=True)
  _range(p, config, 'view.jpeg_quality', 1, 100, integer=True)
  _range(p, config, 'view.train_util', 0, 1, low_open=True, high_open=True)
  for key in ('view.rest_s', 'view.refresh_s', 'view.reload_s', 'view.exit_after_s'):
    _range(p, config, key, 0)
  if not v.resolutions or any(not isinstance(r, int) or r < 8 for r in v.resolutions) or list(
      v.resolutions) != sorted(v.resolutions):
    p.append(f'view.resolutions={tuple(v.resolutions)!r} must be increasing long sides of at least 8 px, '
             f'e.g. (48, 96, 128)')
  if t.viewer and config.distributed.num_processes > 1:
    p.append('the viewer runs in one process; with distributed.num_processes > 1 set train.viewer=False')
  _views(p, 'eval.views', e.views)
  _views(p, 'eval.train_views', e.train_views)
  for group in t.optimizer.groups:
    if (not isinstance(group, (tuple, list)) or len(group) not in (2, 3) or not isinstance(group[0], str)
        or not isinstance(group[1], (int, float)) or group[1] <= 0 or (len(group) == 3 and (
            not isinstance(group[2], int) or isinstance(group[2], bool) or group[2] < 0))):
      p.append(f'train.optimizer.groups holds {group!r}; each entry is (regex, lr scale > 0), or with a '
               f'warm-up (regex, lr scale > 0, steps >= 0), e.g. (("encoding", 10.0),)')
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
