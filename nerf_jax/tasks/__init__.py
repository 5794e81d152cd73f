"""Tasks by name: config.task picks one from TASKS.

A task is a tasks.base.Task subclass built as `Task(config.data, config.model, config.loss)`; a scene
method subclasses tasks.scene.SceneTask. A new one is a file of its own plus one `TASKS.register` line
below (docs/extending.md).
"""

from nerf_jax.registry import Registry
from nerf_jax.tasks import image_fit, nerf, scene
from nerf_jax.tasks.base import EvalView, Task, select_views
from nerf_jax.tasks.scene import SceneTask

TASKS = Registry('task', 'task')
TASKS.register('img_fit', image_fit.ImageFitTask)
TASKS.register('nerf', nerf.NerfTask, check=scene.check)


def make_task(config, **data):
  """The task config.task names, with its data loaded. data: keyword arguments for the task's
  constructor that replace reading the data (benchmarks: scene=..., image=...)."""
  return TASKS.get(config.task)(config.data, config.model, config.loss, **data)


__all__ = ['EvalView', 'SceneTask', 'TASKS', 'Task', 'make_task', 'select_views']
