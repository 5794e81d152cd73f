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
    """image: float32 [H, W, 3] or [H, W] in [0, 1], or uint8 [H, W, 3]."""
    if self.writer is not None:
      image = np.asarray(image)
      self.writer.add_image(name, image, step, dataformats='HW' if image.ndim == 2 else 'HWC')

  def histogram(self, name, values, step):
    """values: array of any shape."""
    if self.writer is not None:
      self.writer.add_histogram(name, np.asarray(values).ravel(), step)

  def flush(self):
    if self.writer is not None:
      self.writer.flush()

  def close(self):
    if self.writer is not None:
      self.writer.close()
