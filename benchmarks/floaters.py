"""Where the weight lies along held-out rays of a trained real capture: the fog of a 360-degree scene,
measured per view (issue 38's first measurement).

  python benchmarks/floaters.py --config configs/colmap_fast_cpu.py --workdir WORKDIR \
      --config.data.root=../shared/data/captures --config.data.scene=fruit

For each view of eval.split (eval.views) it renders every pixel with the shown field and prints, beside
the view's PSNR: the median over pixels of d50 / d_centre, where d50 is the depth at which the ray's
accumulated opacity reaches 0.5 and d_centre the depth of the scene's centre (the origin: the point
every camera of an inward capture looks at, where the object is); 'fog', the mean opacity a ray
gathers in the first NEAR_SHARE of the way to the centre, where a 360-degree capture has only air
(floaters that the training cameras cannot see in front of themselves); and the same two over the
worst tenth of the pixels (largest colour error). A healthy view has d50 / d_centre near 1 (less for
the ground in front of the object) and fog near 0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from nerf_jax import evaluate, metrics, precision, tasks, train  # noqa: E402
from nerf_jax.tasks.nerf import _model_variables  # noqa: E402

NEAR_SHARE = 0.35  # of the way to the centre: closer than this, a 360-degree capture holds only air

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
flags.DEFINE_string('workdir', None, 'The trained run.')


def weight_profile(weights, z_vals, depth_centre):
  """(d50 / d_centre, fog) per ray from its samples' weights and depths.

  weights, z_vals: float [n, S]; depth_centre: float [] -> float [n], float [n]
  """
  cumulative = np.cumsum(weights, axis=-1)
  reached = cumulative >= 0.5
  first = np.argmax(reached, axis=-1)
  d50 = np.where(reached.any(-1), np.take_along_axis(z_vals, first[:, None], -1)[:, 0], np.inf)
  fog = np.sum(np.where(z_vals < NEAR_SHARE * depth_centre, weights, 0.0), axis=-1)
  return d50 / depth_centre, fog


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  config = FLAGS.config
  config.model.dtype, _ = precision.resolve(config.model.dtype)
  task = tasks.make_task(config)
  state, source = train.load_state(config, task, FLAGS.workdir)
  variables = _model_variables(state.variables)
  render = jax.jit(lambda v, rays: (lambda r: (r.rgb, r.weights, r.z_vals))(
      task.model.apply(v, rays, None)[task.shown]))
  scene = task.split(config.eval.split)
  print(f'{source}; split {config.eval.split!r}; fog = opacity within {NEAR_SHARE:.0%} of the way to the centre')
  print(f'{"view":<34}{"PSNR":>7}{"d50/dc":>9}{"fog":>7}{"worst10% d50/dc":>17}{"fog":>7}')
  rows = []
  for index, view in zip(range(len(scene.names)), task.eval_views(config.eval.split, config.eval.views)):
    pose = scene.poses[int(view.name.rsplit('_', 1)[1])]
    depth_centre = float(pose[:3, 3] @ pose[:3, 2])  # the origin's depth along the camera's -Z
    outputs = evaluate.predict_in_chunks(render, variables, view.inputs, config.eval.chunk)
    rgb, weights, z_vals = (np.asarray(o, np.float64) for o in outputs)
    ratio, fog = weight_profile(weights, z_vals, depth_centre)
    target = view.target.reshape(-1, 3)
    error = np.sum((rgb - target) ** 2, -1)
    worst = error >= np.quantile(error, 0.9)
    psnr = float(metrics.psnr(rgb.reshape(view.target.shape).astype(np.float32), view.target))
    rows.append((psnr, np.median(ratio), fog.mean(), np.median(ratio[worst]), fog[worst].mean()))
    print(f'{view.name + " (" + view.source + ")":<34}{rows[-1][0]:>7.2f}{rows[-1][1]:>9.2f}{rows[-1][2]:>7.3f}'
          f'{rows[-1][3]:>17.2f}{rows[-1][4]:>7.3f}', flush=True)
  mean = np.mean(rows, axis=0)
  print(f'{"mean":<34}{mean[0]:>7.2f}{mean[1]:>9.2f}{mean[2]:>7.3f}{mean[3]:>17.2f}{mean[4]:>7.3f}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
