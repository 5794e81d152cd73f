"""nerf_jax entry point: python main.py --config configs/<name>.py [--workdir DIR] [--mode MODE]

Any config field can be overridden: --config.train.lr=1e-3 --config.data.root=PATH.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import jax

from nerf_jax import checkpoint, checks, config_checks, errors, parallel, precision, tasks, train, video
from nerf_jax import export as export_lib

FLAGS = flags.FLAGS
MODES = ['train', 'evaluate', 'render', 'dataset', 'network', 'mesh', 'pointcloud', 'view']


def define_flags(flag_values, argv=None):
  """main.py's flags on flag_values; argv: the command line they will parse (default sys.argv).

  (The docs' test parses every documented command with these on fresh FlagValues.)
  """
  config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).', lock_config=True,
                                  flag_values=flag_values, sys_argv=argv)
  flags.DEFINE_string('workdir', None, 'Checkpoints, logs and outputs (default: runs/<config.name>).',
                      flag_values=flag_values)
  flags.DEFINE_enum('mode', 'train', MODES,
                    'train (then evaluate); evaluate the latest checkpoint; render an orbit (or '
                    'render.camera_path) video from it; check and draw the dataset; check the network '
                    '(initialised, or the checkpoint); export a mesh or a point cloud from it; view it '
                    'in the browser (config.view).',
                    flag_values=flag_values)
  flags.mark_flags_as_required(['config'], flag_values=flag_values)


define_flags(FLAGS)


HELP = ('--help', '-h', '-?', '--helpshort', '--helpfull')


def parse_flags(argv):
  """absl's parsing, with every mistake reported in one line instead of a traceback: an unknown
  config key, a config file that does not load. --help prints the flags and exits 0."""
  if any(a in HELP for a in argv[1:]):
    app.usage(shorthelp='--helpfull' not in argv, writeto_stdout=True, exitcode=0)
  try:
    remaining = FLAGS(argv)
    FLAGS.config.task  # noqa: B018 (loads the file: a missing one fails only on first use)
  except (AttributeError, KeyError) as e:
    overrides = ' '.join(a for a in argv if a.startswith('--config.'))
    hint = str(e).strip('\'"').replace('\\n', ' ').replace('\\', '')
    sys.exit(f'Unknown config key in {overrides}: {hint}. Every key is listed in configs/default.py.')
  except flags.Error as e:
    sys.exit(f'{e}\nSee python main.py --helpfull.')
  except Exception as e:  # noqa: BLE001 (a config file that does not load: OSError, SyntaxError, ...)
    path = next((a.split('=', 1)[1] if '=' in a else argv[i + 2] for i, a in enumerate(argv[1:])
                 if a.split('=')[0] == '--config' and ('=' in a or i + 2 < len(argv))), '?')
    reason = ' '.join(str(e.__cause__ or e).split())
    sys.exit(f'error: the config file {path!r} could not be loaded ({reason[-200:]}); the configs are '
             f'the .py files in configs/, e.g. configs/demo.py.')
  return remaining


def main(argv):
  if len(argv) > 1:
    sys.exit(f'Unexpected arguments {argv[1:]}; config fields are set as --config.section.key=value.')
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = FLAGS.config
  workdir = FLAGS.workdir or train.default_workdir(config)
  try:
    parallel.initialize(config.distributed)
    config_checks.validate(config, jax.device_count())  # every mode: nonsense stops before any work
    # The products' dtype, chosen once here (model.dtype='auto' follows the device, or the run resumed).
    config.model.dtype, dtype_reason = precision.resolve(config.model.dtype,
                                                         checkpoint.saved_value(workdir, 'model.dtype'))
    if FLAGS.mode != 'dataset' and parallel.is_main_process():
      print(f'model.dtype: {config.model.dtype} ({dtype_reason})', flush=True)
    if FLAGS.mode == 'train':
      train.train_and_evaluate(config, workdir)
    elif FLAGS.mode == 'evaluate':
      train.evaluate_checkpoint(config, workdir)
    elif FLAGS.mode == 'view':
      view(config, workdir)
    elif FLAGS.mode in ('render', 'mesh', 'pointcloud'):
      export(FLAGS.mode, config, workdir)
    elif FLAGS.mode == 'dataset':
      report, problems = checks.check_dataset(config, os.path.join(workdir, 'checks'))
      _report('Dataset', report, problems, f'Pictures: {os.path.join(workdir, "checks")}/cameras.png, '
                                           f'precrop.png')
    else:
      task = tasks.make_task(config)
      state, source = train.load_state(config, task, workdir, required=False)
      report, problems = checks.check_network(task, state.variables, config, trained=state.params)
      report['dtype'] = f'{config.model.dtype} ({dtype_reason})'
      _report(f'Network ({source})', report, problems)
  except errors.USER_ERRORS as e:
    sys.exit(f'error: {e}')
  except errors.Interrupted as e:
    print(f'Stopped by {e}', file=sys.stderr)
    sys.exit(128 + e.signum)  # the shell's convention for "ended by a signal"


def export(mode, config, workdir):
  """--mode render, mesh or pointcloud from the latest checkpoint, into <workdir>/<mode>/step<N>/."""
  checkpoint.require_run(workdir)  # before loading any data: a mistyped workdir fails at once
  task = tasks.make_task(config)
  state, source = train.load_state(config, task, workdir)
  out_dir = os.path.join(os.path.abspath(workdir), mode, f'step{int(state.step)}')
  if mode == 'render':
    paths, report = video.render_path(task, state.variables, config.render, out_dir, config.eval), {}
  elif mode == 'mesh':
    paths, report = export_lib.extract_mesh(task, state.variables, config.mesh, out_dir)
  else:
    paths, report = export_lib.extract_point_cloud(task, state.variables, config, out_dir)
  print(f'{mode} from the {source}:' + ''.join(f'\n  {k}: {v}' for k, v in report.items())
        + '\nWrote:\n  ' + '\n  '.join(paths))


def view(config, workdir):
  """--mode view: serves the workdir's latest checkpoint in the browser, and each newer one as a run
  still training saves it, until view.exit_after_s or Ctrl+C."""
  from nerf_jax import viewer as viewer_lib  # the optional extra: imported only when asked for
  viewer_lib.require_viser()
  checkpoint.require_run(workdir)
  task = tasks.make_task(config)
  state, source = train.load_state(config, task, workdir)
  current = {'state': state, 'unreadable': set()}

  def latest():
    ckpts = checkpoint.Checkpoints(workdir, config, create=False)
    try:
      step = ckpts.latest_step()
      if step is not None and step != int(current['state'].step) and step not in current['unreadable']:
        try:
          current['state'], _ = ckpts.restore(current['state'], step)
          print(f'Viewer: now showing the checkpoint of step {step}.', flush=True)
        except errors.CheckpointError as e:  # a damaged new step: said once, the shown one stays
          current['unreadable'].add(step)
          print(f'Viewer: {e}', flush=True)
    finally:
      ckpts.close()
    return current['state'].variables, int(current['state'].step)

  viewer = viewer_lib.Viewer(task, config.view, workdir, config.render)
  print(f'Viewer of the {source}: {viewer.url} (Ctrl+C stops it'
        + (f'; it stops by itself after {config.view.exit_after_s:g} s' if config.view.exit_after_s else '')
        + ').', flush=True)
  viewer.serve(latest)


def _report(title, report, problems, footer=''):
  print(f'{title}:')
  for key, value in report.items():
    print(f'  {key}: {value}')
  if footer:
    print(footer)
  for problem in problems:
    print(f'PROBLEM: {problem}', file=sys.stderr)
  if problems:
    sys.exit(f'{len(problems)} problem(s) found (above).')
  print('No problems found.')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
