"""PSNR against training time for image-fitting configs on the same image: the tutorial's race.

  python benchmarks/psnr_time.py --data ../shared/data/nerf_synthetic_400 [--seconds 120] [--out docs/img]

Trains each config (default: configs/img_fit.py, the frequency encoding, and configs/img_fit_hash.py,
the hash grid) for --seconds of training time, measuring the full image's PSNR every --every steps
(the measuring is not counted as training time), then writes <out>/psnr_time.json, a plot
<out>/psnr_time.png and the two final images side by side with the target, <out>/img_fit_race.png.
"""

import argparse
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402  (Pillow comes with imageio)

from nerf_jax import batching, evaluate, metrics, parallel, tasks, train  # noqa: E402

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def race(config, seconds, every):
  """[(training seconds, PSNR dB)] and the final image (float [H, W, 3]) of `config`."""
  task = tasks.make_task(config)
  state = train.create_train_state(config, task)
  plan = batching.BatchPlan.from_config(config.train)
  iteration = train.make_train_iteration(task, plan, config.train.microbatches)
  data = parallel.put(task.train_data(), parallel.replicated(parallel.make_mesh()))
  evaluator = evaluate.Evaluator(task, config.eval.chunk, microbatches=config.eval.microbatches)
  view = next(task.eval_views(config.data.split))
  state, m = iteration(state, data)  # compiles: not training time
  jax.block_until_ready(m)
  trained, points, step = 0.0, [], 1
  while trained < seconds:
    start = time.perf_counter()
    previous = None
    for _ in range(every):
      state, m = iteration(state, data)
      # As the training loop does: at most one step queued behind the running one.
      jax.block_until_ready(previous)
      previous = m
    jax.block_until_ready(m)
    trained += time.perf_counter() - start
    step += every
    image = evaluator.render(state.variables, view)['rgb']
    psnr = float(metrics.psnr_from_mse(np.mean((image - view.target) ** 2)))
    points.append((trained, psnr))
    print(f'{config.name}: step {step}, {trained:.1f} s, {psnr:.2f} dB', flush=True)
  return points, image, view.target


def plot(curves, path, size=(640, 400)):
  """A PSNR-time line plot with axes and a legend, drawn with Pillow: curves {name: [(s, dB)]}."""
  width, height = size
  left, right, top, bottom = 60, 20, 20, 50
  image = Image.new('RGB', size, 'white')
  draw = ImageDraw.Draw(image)
  t_max = max(t for pts in curves.values() for t, _ in pts)
  lo = 5 * np.floor(min(p for pts in curves.values() for _, p in pts) / 5)
  hi = 5 * np.ceil(max(p for pts in curves.values() for _, p in pts) / 5)
  x = lambda t: left + (width - left - right) * t / t_max
  y = lambda p: height - bottom - (height - top - bottom) * (p - lo) / (hi - lo)
  draw.rectangle([left, top, width - right, height - bottom], outline='black')
  for p in np.arange(lo, hi + 1e-6, 5):
    draw.line([left, y(p), width - right, y(p)], fill=(220, 220, 220))
    draw.text((10, y(p) - 6), f'{p:.0f} dB', fill='black')
  for t in np.linspace(0, t_max, 5):
    draw.text((x(t) - 10, height - bottom + 8), f'{t:.0f} s', fill='black')
  draw.text((width // 2 - 60, height - 20), 'training time (s)', fill='black')
  for i, (name, pts) in enumerate(curves.items()):
    colour = COLOURS[i % len(COLOURS)]
    draw.line([(x(t), y(p)) for t, p in pts], fill=colour, width=2)
    draw.text((left + 10, top + 10 + 14 * i), name, fill=colour)
  image.save(path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data', required=True, help='the folder holding lego/ (data.root)')
  parser.add_argument('--configs', nargs='+', default=['img_fit', 'img_fit_hash'])
  parser.add_argument('--seconds', type=float, default=120.0, help='training time per config')
  parser.add_argument('--every', type=int, default=100, help='steps between PSNR measurements')
  parser.add_argument('--out', default='docs/img')
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  curves, images, target = {}, [], None
  for name in args.configs:
    config = importlib.import_module(f'configs.{name}').get_config()
    config.data.root = args.data
    points, image, target = race(config, args.seconds, args.every)
    curves[f'{name} ({config.model.encoding})'] = points
    images.append(image)
  with open(os.path.join(args.out, 'psnr_time.json'), 'w') as f:
    json.dump({'machine': f'{jax.devices()[0].platform} x{jax.device_count()}', 'seconds': args.seconds,
               'curves': curves}, f, indent=1)
  plot(curves, os.path.join(args.out, 'psnr_time.png'))
  row = np.concatenate([target, *images], axis=1)
  Image.fromarray(evaluate.to_uint8(row)).save(os.path.join(args.out, 'img_fit_race.png'))
  for name, points in curves.items():
    print(f'{name}: {points[-1][1]:.2f} dB after {points[-1][0]:.1f} s of training')


if __name__ == '__main__':
  main()
