"""nerf_jax entry point: python main.py --config configs/<name>.py [--workdir DIR] [--mode train|evaluate]

Any config field can be overridden: --config.train.lr=1e-3 --config.data.root=PATH.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from nerf_jax import checkpoint, datasets, parallel, tasks, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Checkpoints, logs and outputs (default: runs/<config.name>).')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'], 'train (then evaluate) or evaluate only.')
flags.mark_flags_as_required(['config'])


def parse_flags(argv):
  """absl's parsing, with an unknown config key reported in one line instead of a traceback."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:
    overrides = ' '.join(a for a in argv if a.startswith('--config.'))
    hint = str(e).strip('\'"').replace('\\n', ' ').replace('\\', '')
    sys.exit(f'Unknown config key in {overrides}: {hint}. Every key is listed in configs/default.py.')
  except flags.Error as e:
    sys.exit(f'{e}\nSee python main.py --helpfull.')


def main(argv):
  if len(argv) > 1:
    sys.exit(f'Unexpected arguments {argv[1:]}; config fields are set as --config.section.key=value.')
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = FLAGS.config
  workdir = FLAGS.workdir or train.default_workdir(config)
  try:
    parallel.initialize(config.distributed)
    if FLAGS.mode == 'train':
      train.train_and_evaluate(config, workdir)
    else:
      train.evaluate_checkpoint(config, workdir)
  except (datasets.DatasetError, checkpoint.CheckpointError, tasks.ConfigError,
          train.NonFiniteLossError) as e:
    sys.exit(f'error: {e}')
  except train.Interrupted as e:
    print(f'Stopped by {e}', file=sys.stderr)
    sys.exit(128 + e.signum)  # the shell's convention for "ended by a signal"


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
