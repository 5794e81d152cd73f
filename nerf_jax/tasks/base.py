"""The task contract: every hook the trainer, evaluation, the debugging modes and rendering call.

One trainer serves every task. A task owns its data, model and loss; the trainer owns the loop, the
optimiser, checkpoints and logs. A task is built from config.data, config.model and config.loss only;
trainer settings reach it as arguments (a BatchPlan), never by reading config.train. Methods marked
(jittable) run under jit and must be pure. Hooks with a default need overriding only where the task has
something to say; shared code calls them unconditionally and never asks which task it has.
"""

import abc
from typing import Any, Iterator, NamedTuple

import jax
import numpy as np

from nerf_jax import flops
from nerf_jax.errors import ConfigError


class EvalView(NamedTuple):
  """One view to evaluate: its name, the model inputs for every pixel and the ground truth.

  inputs: pytree of arrays with leading axis height * width; target: float32 [height, width, 3].
  source: what the view is in the user's terms (a photo's file name), or '' where the name says it.
  """
  name: str
  inputs: Any
  target: np.ndarray
  source: str = ''


def select_views(num_views, views):
  """Indices chosen by a [start, stop, step] selection (the original framework's `cams`).

  stop = -1 means through the last view. Returns a list of ints.
  """
  start, stop, step = views
  stop = num_views if stop == -1 else min(stop, num_views)
  return list(range(start, stop, step))


class Task(abc.ABC):
  """Base class of every task (tasks.TASKS). Subclasses set `name` and `item` as class attributes,
  `model` and `train_split` in __init__.

  name: the registry name (config.task), for messages; item: what one batch item is ('ray', 'pixel').
  """
  name: str = 'task'
  item: str = 'item'
  # Whether the task learns a scene seen by posed cameras (then it has `scene`, its training
  # datasets.SceneSplit, and renders any pose through view_from_pose): the viewer draws the cameras and
  # renders from the browser's; a task without shows its first view beside the fit.
  has_cameras: bool = False
  train_split: str = 'train'  # the split train_data comes from (subclasses set it from data.split)
  model: Any  # a flax.linen.Module; its apply is what the TrainState holds

  # --- training (the trainer) ---

  @abc.abstractmethod
  def init_inputs(self) -> Any:
    """Inputs of the right structure to initialise the model's parameters."""

  def init_variables(self, key) -> tuple:
    """(params, state): the variables a new run starts from. params {collection: tree} are what the
    optimiser trains ('params', and whatever else the task trains, e.g. a camera model's 'camera');
    state {collection: tree} what the task keeps itself and refreshes in after_step (an occupancy
    grid). The loss, predict and after_step see both merged, as `variables`. Default: the model's
    init; its 'params' collection trained, every other one state."""
    variables = dict(self.model.init(key, self.init_inputs()))
    return {'params': variables.pop('params', {})}, variables

  def optimizer_groups(self) -> tuple:
    """((regex on the parameter path, learning-rate scale), ...) the task adds to
    train.optimizer.groups: parameters it wants trained at their own rate (a camera model's)."""
    return ()

  @abc.abstractmethod
  def train_data(self) -> Any:
    """Pytree of arrays the steps sample from; placed on every device once."""

  @abc.abstractmethod
  def pool_size(self, plan) -> int:
    """How many items one step can draw from under `plan` (batching.check_sizes holds the batch to it)."""

  @abc.abstractmethod
  def sample_batch(self, data, key, step, plan) -> Any:
    """The step's global batch of plan.batch_size items drawn from `data` (jittable; depends only on
    key, step and plan). Leaves have a leading batch axis; any randomness the loss needs travels in the
    batch, per item, so any split of the batch (devices, microbatches) computes the same thing."""

  @abc.abstractmethod
  def loss(self, variables, batch, step) -> tuple:
    """(scalar loss, {name: scalar metric}), a mean over the batch (jittable, deterministic), of the
    variables (params and state merged; differentiated in the params). `step` (int32 []) lets a term
    anneal its weight."""

  def after_step(self, variables, step, key) -> Any:
    """The model's variables after the optimiser's update of step `step` (int32 []), for state the
    task keeps itself rather than training (an occupancy grid); `key` is the step's PRNG key
    (jittable, and the same on every device). Only the state collections of the result are kept (the
    optimiser owns the params). Default: unchanged."""
    del step, key
    return variables

  def alarms(self, metrics, step, plan) -> dict:
    """{alarm name: message, or None while all is well} from a step's fetched metrics (floats).

    The trainer logs each as train/<name> (1 firing, 0 not) and prints its message once per run.
    """
    del metrics, step, plan
    return {}

  # --- evaluation and rendering ---

  @abc.abstractmethod
  def predict(self, variables, inputs) -> dict:
    """Per-pixel outputs ({'rgb': [n, 3], ...}) for a chunk of inputs (jittable, deterministic)."""

  @abc.abstractmethod
  def eval_views(self, split, views) -> Iterator[EvalView]:
    """The views of `split` chosen by the [start, stop, step] selection `views`."""

  @abc.abstractmethod
  def num_views(self, split) -> int:
    """How many views `split` has (for saying when an evaluation used a subset)."""

  def eval_notes(self, split) -> dict:
    """{name: text} an evaluation of `split` says beside its scores, in its printed lines and
    metrics.json: what the views were rendered with beyond their rays, where the config chose it (a
    per-image appearance code: {'appearance': 'mean of 8 training codes (...)'}). Default: nothing."""
    del split
    return {}

  def extra_images(self, outputs) -> dict:
    """{suffix: float [H, W] in [0, 1]} maps worth saving beside a view's prediction, from the outputs
    of predict reshaped to [H, W, ...]. Rendering writes a video of extra_images()['depth'] if present."""
    del outputs
    return {}

  def densities(self, variables):
    """Densities worth a histogram in the logs (float array of any shape), or None."""
    del variables
    return None

  def camera_path(self, render_config):
    """The camera_path.CameraPath --mode render renders (render.camera_path's file, or the task's own)."""
    raise ConfigError(f'--mode render needs a task with cameras; config.task={self.name!r} has no camera '
                      f'to move.')

  def view_from_pose(self, name, pose, intrinsics, height, width) -> EvalView:
    """An EvalView of every pixel of a height x width camera at `pose` (float32 [4, 4]
    camera-to-world) with `intrinsics` (float32 [4]), no ground truth."""
    del name, pose, intrinsics, height, width
    raise ConfigError(f'config.task={self.name!r} cannot render from an arbitrary camera pose.')

  # --- exporting the scene (--mode mesh, --mode pointcloud) ---

  def field_density(self, variables, points):
    """Density float32 [n] at points float32 [n, 3] (jittable)."""
    del variables, points
    raise ConfigError(f'--mode mesh needs a task with a 3-D field; config.task={self.name!r} has none.')

  def surface_values(self, variables, points):
    """What --mode mesh cuts at surface_level: float32 [n] at points float32 [n, 3], higher inside the
    solid (jittable)."""
    del variables, points
    raise ConfigError(f'--mode mesh needs a task with a 3-D field; config.task={self.name!r} has none.')

  def surface_level(self, values):
    """The level of surface_values the mesh is at, from a sample of them (float [...])."""
    del values
    raise ConfigError(f'--mode mesh needs a task with a 3-D field; config.task={self.name!r} has none.')

  def field_colour(self, variables, points, viewdirs):
    """Colour float32 [n, 3] at points float32 [n, 3] seen along unit viewdirs [n, 3] (jittable)."""
    del variables, points, viewdirs
    raise ConfigError(f'--mode mesh needs a task with a 3-D field; config.task={self.name!r} has none.')

  def scene_box(self):
    """(lo, hi) float [3] each: the region --mode mesh samples when mesh.box is empty."""
    raise ConfigError(f'config.task={self.name!r} has no scene box; set mesh.box.')

  def view_points(self, view, outputs, min_opacity):
    """(points float [P, 3], colours float [P, 3]): the surface a rendered view (outputs of predict,
    [H, W, ...]) shows where it is more opaque than min_opacity, for --mode pointcloud."""
    del view, outputs, min_opacity
    raise ConfigError(f'--mode pointcloud needs a task with cameras and depth; config.task={self.name!r} '
                      f'has none.')

  # --- the debugging modes ---

  def forward_flops(self, variables) -> float:
    """Forward FLOPs of the matrix products of predict, per item, counted from its jaxpr."""
    view = next(self.eval_views(self.train_split, (0, 1, 1)))
    inputs = jax.tree_util.tree_map(lambda x: np.asarray(x)[:8], view.inputs)
    return flops.product_flops(self.predict, variables, inputs) / 8

  def inspect(self, variables, predict) -> tuple:
    """(report dict, problems) a task adds to --mode network; predict(variables, inputs) -> outputs
    renders any number of inputs in chunks."""
    del variables, predict
    return {}, []
