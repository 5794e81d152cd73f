"""Every error nerf_jax raises on purpose, in one module that imports nothing of ours.

Each message names the key, file or step at fault and what to do; main.py prints it in one line and
exits non-zero. Keeping them here (not beside the code that raises them) is what lets any module raise
any of them without an import cycle.
"""

import signal


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key and what to set instead."""


class DatasetError(ValueError):
  """Missing or malformed scene data; the message says what is wrong and how to fix it."""


class CheckpointError(RuntimeError):
  """A workdir whose checkpoints cannot be used as asked; the message says why and what to do."""


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; training stopped without saving the bad parameters."""


class Interrupted(Exception):
  """SIGINT or SIGTERM stopped training after a checkpoint of the current step was saved."""

  def __init__(self, signum, step, directory):
    self.signum = signum
    super().__init__(f'{signal.Signals(signum).name} at step {step}: saved a checkpoint of step {step} in '
                     f'{directory}. Run the same command again to resume from it.')


# What main.py turns into a one-line message and a non-zero exit.
USER_ERRORS = (ConfigError, DatasetError, CheckpointError, NonFiniteLossError)
