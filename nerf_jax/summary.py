"""TensorBoard logs (tensorboardX). Only process 0 writes, so several hosts never clobber a file."""

import jax
import numpy as np
from tensorboardX import SummaryWriter


class Summary:
  """Scalars and images under `logdir`; a no-op on processes other than 0."""

  def __init__(self, logdir):
    self.writer = SummaryWriter(logdir) if jax.process_index() == 0 else None

  def scalars(self, values, step):
    """values: {name: float}."""
    if self.writer is not None:
      for name, value in values.items():
        self.writer.add_scalar(name, float(value), step)

  def image(self, name, image, step):
    """image: float32 [H, W, 3] in [0, 1] or uint8 [H, W, 3]."""
    if self.writer is not None:
      self.writer.add_image(name, np.asarray(image), step, dataformats='HWC')

  def flush(self):
    if self.writer is not None:
      self.writer.flush()

  def close(self):
    if self.writer is not None:
      self.writer.close()
