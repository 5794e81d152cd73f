"""Whole-image prediction in fixed-size chunks, metrics and images on disk."""

import functools
import json
import os
import time

import imageio.v3 as iio
import jax
import numpy as np

from nerf_jax import batching, lpips, metrics, parallel


def chunk_rows(inputs, start, chunk):
  """Rows [start, start + chunk) of `inputs` (pytree of arrays [n, ...]) as numpy, the last chunk padded
  to full size by repeating row 0 (so a predict of `chunk` rows compiles once whatever n is).

  returns (pytree of numpy [chunk, ...], how many rows are real)
  """
  piece = jax.tree_util.tree_map(lambda x: np.asarray(x[start:start + chunk]), inputs)
  size = jax.tree_util.tree_leaves(piece)[0].shape[0]
  if size < chunk:
    piece = jax.tree_util.tree_map(
        lambda x: np.concatenate([x, np.repeat(x[:1], chunk - size, axis=0)]), piece)
  return piece, size


def predict_in_chunks(predict, params, inputs, chunk, place=lambda piece: piece):
  """Runs `predict(params, place(chunk_inputs))` over `inputs` in chunks of exactly `chunk` rows.

  The last chunk is padded to full size (chunk_rows), so `predict` compiles once whatever the
  image size; only the chunk's results travel back to the host, so memory follows the chunk, not the
  image.
  inputs: pytree of arrays [n, ...]; predict: jitted fn -> pytree of [chunk, ...]
  place: puts a chunk (pytree of numpy [chunk, ...]) where predict reads it (e.g. split over devices)
  returns: pytree of numpy arrays [n, ...]
  """
  n = jax.tree_util.tree_leaves(inputs)[0].shape[0]
  outputs = []
  for start in range(0, n, chunk):
    piece, size = chunk_rows(inputs, start, chunk)
    result = jax.device_get(predict(params, place(piece)))
    outputs.append(jax.tree_util.tree_map(lambda x: x[:size], result))
  return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outputs)


def to_uint8(image):
  """float [H, W, C] in [0, 1] -> uint8 [H, W, C]; NaN (a diverged run's pixels) as black."""
  return np.round(np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)


def predict_in_parts(predict, params, inputs, parts):
  """predict(params, inputs) computed `parts` rows at a time in a loop inside the jitted function.

  The same outputs; only one part's activations are live at once. On a CPU, parts of ~128 rays keep
  each layer's activations in the caches (benchmarks/run.py, the paper model: 1.3x the rays/s and 40% of
  the peak memory of one 2,048-ray pass).
  inputs: pytree of arrays [n, ...] with n divisible by parts -> pytree of [n, ...]
  """
  if parts == 1:
    return predict(params, inputs)
  split = jax.tree_util.tree_map(lambda x: x.reshape(parts, -1, *x.shape[1:]), inputs)
  outputs = jax.lax.map(lambda part: predict(params, part), split)
  return jax.tree_util.tree_map(lambda x: x.reshape(-1, *x.shape[2:]), outputs)


class Evaluator:
  """Renders a task's views and scores them; one compiled predict and SSIM per image size.

  Each chunk is split over the mesh's devices (default: every device): every device renders
  chunk / devices rays, in `microbatches` parts one after the other (eval.microbatches), and the
  results are gathered back; only process 0 writes files.
  """

  def __init__(self, task, chunk, mesh=None, lpips_weights=None, microbatches=1):
    mesh = parallel.make_mesh() if mesh is None else mesh
    batching.check_sizes(mesh.size, chunk=chunk, eval_microbatches=microbatches)
    self.task = task
    self.chunk = chunk
    self.devices = mesh.size
    self.lpips_weights = lpips_weights  # from lpips.load_weights; None: no LPIPS
    spec = jax.sharding.PartitionSpec
    predict = functools.partial(predict_in_parts, task.predict, parts=microbatches)
    self._predict = jax.jit(
        jax.shard_map(predict, mesh=mesh, in_specs=(spec(), spec(parallel.AXIS)),
                      out_specs=spec(parallel.AXIS)),
        out_shardings=parallel.replicated(mesh))
    self._place = functools.partial(parallel.put, sharding=parallel.split(mesh))
    self._ssim = jax.jit(metrics.ssim)

  def predict(self, params, inputs):
    """Model outputs for inputs (pytree of [n, ...]), computed chunk by chunk: numpy {name: [n, ...]}."""
    return predict_in_chunks(self._predict, params, inputs, self.chunk, self._place)

  def predict_chunk(self, params, inputs, start):
    """Model outputs for the one chunk of `inputs` that starts at row `start` (the live viewer renders a
    frame a chunk at a time, between training steps): numpy {name: [rows, ...]}, rows <= chunk."""
    piece, size = chunk_rows(inputs, start, self.chunk)
    result = jax.device_get(self._predict(params, self._place(piece)))
    return jax.tree_util.tree_map(lambda x: x[:size], result)

  def render(self, params, view):
    """Model outputs for every pixel of `view`, each reshaped to [H, W, ...]."""
    height, width = view.target.shape[:2]
    flat = self.predict(params, view.inputs)
    return {k: v.reshape(height, width, *v.shape[1:]) for k, v in flat.items()}

  def score(self, prediction, target):
    """{'psnr': dB, 'ssim': [0, 1], and with weights 'lpips'} of an rgb prediction [H, W, 3] against
    the ground truth."""
    scores = {'psnr': float(metrics.psnr(prediction, target)),
              'ssim': float(self._ssim(prediction, target))}
    if self.lpips_weights is not None:
      scores['lpips'] = float(lpips.lpips(self.lpips_weights, prediction, target))
    return scores

  def run(self, params, split, views=(0, -1, 1), out_dir=None):
    """Scores the `views` ([start, stop, step]) of `split`; with out_dir, writes metrics.json and per
    view {name}.png (prediction), {name}_gt_pred.png and the task's extra maps ({name}_depth.png, ...).

    summary['non_finite_views'] names the views whose prediction is not finite (NaN or inf); the task's
    eval_notes(split) join the summary by name (e.g. 'appearance': the code held-out views used).
    summary['psnr_median'] and summary['worst_view'] ({'name', 'source' (its photo), 'psnr', 'ssim'}: the view of lowest
    PSNR) say how the views spread: a mean hides the one view a floater fogs.
    Returns (summary dict, the first view's images for the logs: {'gt_pred': ground truth | prediction,
    uint8 [H, 2W, 3], and the task's extra maps, float [H, W]}, plus 'worst_gt_pred', the worst view's
    pair, where it is another view).
    """
    per_view, first, non_finite, worst = {}, None, [], None
    out_dir = out_dir if parallel.is_main_process() else None
    seconds, rays = [], 0
    for view in self.task.eval_views(split, views):
      start = time.perf_counter()
      outputs = self.render(params, view)
      seconds.append(time.perf_counter() - start)
      rays += view.target.shape[0] * view.target.shape[1]
      per_view[view.name] = self.score(outputs['rgb'], view.target)
      if not np.all(np.isfinite(outputs['rgb'])):
        non_finite.append(view.name)
      pair = np.concatenate([to_uint8(view.target), to_uint8(outputs['rgb'])], axis=1)
      if first is None:
        first = {'gt_pred': pair, **self.task.extra_images(outputs)}
      if worst is None or per_view[view.name]['psnr'] < per_view[worst[0]]['psnr']:
        worst = (view.name, pair, view.source)
      if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        iio.imwrite(os.path.join(out_dir, f'{view.name}.png'), to_uint8(outputs['rgb']))
        iio.imwrite(os.path.join(out_dir, f'{view.name}_gt_pred.png'), pair)
        for suffix, image in self.task.extra_images(outputs).items():
          iio.imwrite(os.path.join(out_dir, f'{view.name}_{suffix}.png'), to_uint8(image))
    total = self.task.num_views(split)
    summary = {
        'split': split,
        'num_views': len(per_view),
        'subset': len(per_view) < total,
        'split_views': total,
        **self.task.eval_notes(split),  # what the views were rendered with (a per-image code), by name
        'psnr': float(np.mean([m['psnr'] for m in per_view.values()])),
        'ssim': float(np.mean([m['ssim'] for m in per_view.values()])),
        'psnr_median': float(np.median([m['psnr'] for m in per_view.values()])),
        'worst_view': {'name': worst[0], 'source': worst[2], **per_view[worst[0]]},
        **({'lpips': float(np.mean([m['lpips'] for m in per_view.values()]))}
           if self.lpips_weights is not None else {}),
        # Rendering speed, the first view's compilation included when it is the only one.
        'seconds_per_image': float(np.median(seconds[1:] or seconds)),
        'rays_per_second': float(rays / len(seconds) / np.median(seconds[1:] or seconds)),
        'devices': self.devices,
        'views': per_view,
        # Views whose prediction holds NaN or inf: the parameters diverged and the means above are NaN.
        'non_finite_views': non_finite,
    }
    if out_dir is not None:
      with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if len(per_view) > 1 and worst[1] is not first['gt_pred']:
      first['worst_gt_pred'] = worst[1]
    return summary, first
