"""The task registry: what the trainer and evaluator need from a mode (image fitting, NeRF).

One trainer serves every task. A task owns its data, model and loss; the trainer owns the loop,
optimiser, checkpoints and logs. Its methods are pure where they run under jit.
"""

from typing import Any, Iterator, NamedTuple, Protocol

import numpy as np


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key and what to set instead."""


class EvalView(NamedTuple):
  """One view to evaluate: its name, the model inputs for every pixel and the ground truth.

  inputs: pytree of arrays with leading axis height * width; target: float32 [height, width, 3].
  """
  name: str
  inputs: Any
  target: np.ndarray


class Task(Protocol):
  model: Any  # a flax.linen.Module

  def dummy_inputs(self) -> Any:
    """Inputs of the right structure to initialise the model's parameters."""

  def train_data(self) -> Any:
    """Pytree of arrays the steps sample from; placed on the device once."""

  def sample_batch(self, data, key, step) -> Any:
    """The step's global batch, drawn from `data` (pure, jittable; depends only on key and step).

    Leaves have a leading batch axis; any randomness the loss needs travels in the batch, per item.
    """

  def loss(self, params, batch) -> tuple:
    """(scalar loss, dict of scalar metrics), a mean over the batch (pure, jittable, deterministic)."""

  def predict(self, params, inputs) -> dict:
    """Per-pixel outputs ({'rgb': [n, 3], ...}) for a chunk of inputs (pure, jittable)."""

  def eval_views(self, split: str, views: tuple) -> Iterator[EvalView]:
    """The views of `split` chosen by the [start, stop, step] selection `views`."""

  def num_views(self, split: str) -> int:
    """How many views `split` has (for saying when an evaluation used a subset)."""

  def extra_images(self, outputs: dict) -> dict:
    """{suffix: float [H, W] in [0, 1]} maps worth saving beside a view's prediction (may be empty)."""


def make_task(config) -> Task:
  """The task named by config.task, with its data loaded."""
  # Imported here so that a task's dependencies load only when it is used.
  from nerf_jax import image_fit, nerf
  registry = {'img_fit': image_fit.ImageFitTask, 'nerf': nerf.NerfTask}
  if config.task not in registry:
    raise ConfigError(f'Unknown task {config.task!r}; config.task must be one of {sorted(registry)}.')
  train = config.train
  if train.microbatches < 1 or train.batch_size % train.microbatches:
    raise ConfigError(f'train.batch_size={train.batch_size} does not split into '
                      f'train.microbatches={train.microbatches} equal parts; use a divisor of it.')
  return registry[config.task](config)
