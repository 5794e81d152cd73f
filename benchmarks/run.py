"""Speed and memory benchmarks: python benchmarks/run.py [--only NAME] [--json PATH] [--dtype DTYPE]
[--profile]

Each entry times the real jitted training iteration (or rendering) of a config on synthetic data of the
config's size (speed does not depend on the pixels' values) and reports it against this machine's
float32 matrix-product rate, and against the rate of products in the entry's model.dtype, both measured
in the same process. Every entry runs in a process of its own, so its peak_rss_mb is its own.
--profile prints, instead, where the step of each entry in PROFILED spends its time (profile_step.py).
"""

import argparse
import dataclasses
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import colmap_fast_cpu, img_fit, lego, lego_cpu, lego_fast_cpu  # noqa: E402
from nerf_jax import batching, evaluate, fields, parallel, precision, tasks, train  # noqa: E402
from nerf_jax.cameras import pinhole  # noqa: E402
from nerf_jax.datasets import SceneSplit, generated  # noqa: E402
from nerf_jax.fields import hashgrid  # noqa: E402

from benchmarks import profile_step  # noqa: E402


def matmul_gflops(dtype='float32', size=4096, repeats=5):
  """Best [size, size] @ [size, size] rate over `repeats` runs, in GFLOP/s, with operands of `dtype`
  (model.dtype's name) accumulated in float32, as the models' layers compute."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32).astype(dtype)
  f = jax.jit(lambda x: jnp.matmul(x, x, preferred_element_type=jnp.float32))
  f(a).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def time_training(task, config, min_seconds=10.0, min_steps=50):
  """(compile_s, steps_per_s, forward FLOPs per item) of task's jitted training iteration."""
  start = time.perf_counter()
  state = train.create_train_state(config, task)
  data = parallel.put(task.train_data(), parallel.replicated(parallel.make_mesh()))
  iteration = train.make_train_iteration(task, batching.BatchPlan.from_config(config.train),
                                         config.train.microbatches)
  state, metrics = iteration(state, data)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  state, metrics = iteration(state, data)  # warm up
  jax.block_until_ready(metrics)
  # Steps are queued without waiting, as in training; a wait every `group` steps measures them.
  group = 10 if min_steps >= 10 else 1
  steps, start = 0, time.perf_counter()
  while steps < min_steps or time.perf_counter() - start < min_seconds:
    for _ in range(group):
      state, metrics = iteration(state, data)
    jax.block_until_ready(metrics)
    steps += group
  return compile_s, steps / (time.perf_counter() - start), task.forward_flops(state.variables)


def synthetic_scene(num_views, size):
  """A SceneSplit of random images seen from the built-in scene's cameras (speed only)."""
  rng = np.random.default_rng(0)
  poses = np.stack([pinhole.look_at_pose(p) for p in generated.camera_positions(num_views, 0)])
  intrinsics = pinhole.centred_intrinsics(0.5 * size / np.tan(0.5 * generated.CAMERA_ANGLE_X), size, size)
  return SceneSplit(images=rng.uniform(size=(num_views, size, size, 3)).astype(np.float32),
                    poses=poses.astype(np.float32), intrinsics=np.tile(intrinsics, (num_views, 1)),
                    names=tuple(f'r_{i}' for i in range(num_views)))


def with_dtype(config, dtype):
  """config with model.dtype set to `dtype`, or as the config has it when dtype is None ('auto' resolved
  for this machine, as main.py does)."""
  config.model.dtype, _ = precision.resolve(config.model.dtype if dtype is None else dtype)
  return config


def bench_nerf_training(config, size, min_steps, task=None):
  task = task or tasks.make_task(config, scene=synthetic_scene(20, size))
  compile_s, steps_per_s, flops_per_ray = time_training(task, config, min_steps=min_steps)
  # Backward costs about twice the forward: three forward passes' worth per step.
  flops = 3 * flops_per_ray * config.train.batch_size
  return {'steps_per_s': steps_per_s, 'rays_per_s': steps_per_s * config.train.batch_size,
          'flops_per_step': flops, 'compile_s': compile_s, 'microbatches': config.train.microbatches,
          'dtype': config.model.dtype}


def nerf_paper_config(dtype):
  """configs/lego.py's model and samples at 1024 rays a step.

  On a CPU the step runs as 8 microbatches of 128 rays (the same update; measured 10.1 -> 7.3 s a step
  on 2 cores, as the activations then fit the caches); on an accelerator as one batch.
  """
  config = with_dtype(lego.get_config(), dtype)
  config.train.microbatches = 8 if jax.default_backend() == 'cpu' else 1
  return config


def bench_nerf_paper(dtype):
  return bench_nerf_training(nerf_paper_config(dtype), 400, min_steps=3)


def lego_cpu_config(dtype):
  """configs/lego_cpu.py with model.dtype `dtype` (None: its own)."""
  return with_dtype(lego_cpu.get_config(), dtype)


def bench_nerf_cpu(dtype):
  """configs/lego_cpu.py as it trains (100x100 images), and on a CPU where its step's time goes
  (benchmarks/profile_step.py): products_ms_per_step, outside_products_ms_per_step (the step's time at
  steps_per_s less its matrix products': the figure to watch for regressions), parts_ms_per_step."""
  config = lego_cpu_config(dtype)
  task = tasks.make_task(config, scene=synthetic_scene(20, 100))
  entry = bench_nerf_training(config, 100, min_steps=20, task=task)
  if jax.default_backend() == 'cpu':  # the trace's operations are the CPU runtime's
    profiled = profile_step.summary(profile_step.profile_training(task, config), 1e3 / entry['steps_per_s'])
    entry.update({k: profiled[k] for k in ('products_ms_per_step', 'outside_products_ms_per_step',
                                           'operations_per_step', 'parts_ms_per_step')})
  return entry


def paper_eval_config(dtype):
  """configs/lego.py for rendering; on a CPU each chunk runs in parts of 128 rays (eval.microbatches:
  the same images, activations in cache), on an accelerator as one pass."""
  config = with_dtype(lego.get_config(), dtype)
  if jax.default_backend() == 'cpu':
    config.eval.microbatches = config.eval.chunk // 128
  return config


def time_rendering(config, size, scene=None):
  """Rendering a size x size view of random pixels with `config`'s freshly initialised model, in
  eval.chunk rays at a time. A 'step' here is one chunk: flops_per_step and steps_per_s are per chunk."""
  task = tasks.make_task(config, scene=synthetic_scene(1, size) if scene is None else scene)
  params = train.create_train_state(config, task).variables
  evaluator = evaluate.Evaluator(task, config.eval.chunk, microbatches=config.eval.microbatches)
  view = next(task.eval_views(config.data.split, (0, 1, 1)))
  start = time.perf_counter()
  evaluator.render(params, view)  # compiles
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  evaluator.render(params, view)
  seconds = time.perf_counter() - start
  chunks = -(-size * size // config.eval.chunk)
  return {'steps_per_s': chunks / seconds, 'rays_per_s': size * size / seconds,
          'flops_per_step': task.forward_flops(params) * config.eval.chunk,
          'compile_s': compile_s, 'seconds_per_image': seconds, 'chunk': config.eval.chunk,
          'microbatches': config.eval.microbatches, 'dtype': config.model.dtype}


def bench_eval_nerf_paper(dtype, size=64):
  """Rendering a size x size view with the paper model, in eval.chunk rays at a time."""
  return time_rendering(paper_eval_config(dtype), size)


def bench_eval_cpu(dtype, size=100):
  """Rendering a size x size view with configs/lego_cpu.py's model, as its evaluations do."""
  return time_rendering(lego_cpu_config(dtype), size)


def bench_render_800(dtype, rows=0):
  """Peak memory (and speed) rendering an 800x800 view with the paper model at configs/lego.py's
  eval.chunk, as --mode evaluate/render do.

  Memory follows the chunk, not the image: only one chunk's activations exist at a time and the
  image's outputs are 800 * 800 * 5 floats (13 MB). The whole view takes ~30 minutes on 2 CPU cores,
  so on a CPU the default renders its first 40 rows (32,000 rays, 16 chunks); --render-rows 800 for
  all of it.
  """
  config = paper_eval_config(dtype)
  rows = rows or (40 if jax.default_backend() == 'cpu' else 800)
  task = tasks.make_task(config, scene=synthetic_scene(1, 32))
  params = train.create_train_state(config, task).variables
  evaluator = evaluate.Evaluator(task, config.eval.chunk, microbatches=config.eval.microbatches)
  intrinsics = pinhole.centred_intrinsics(0.5 * 800 / np.tan(0.5 * generated.CAMERA_ANGLE_X), 800, 800)
  rays = pinhole.image_rays(task.scene.poses[0], intrinsics, rows, 800)
  flat = jax.tree_util.tree_map(lambda x: np.asarray(x).reshape(-1, 3), rays)
  start = time.perf_counter()
  evaluator.predict(params, jax.tree_util.tree_map(lambda x: x[:config.eval.chunk], flat))  # compiles
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  evaluator.predict(params, flat)
  seconds = time.perf_counter() - start
  chunks = -(-rows * 800 // config.eval.chunk)
  return {'steps_per_s': chunks / seconds, 'rays_per_s': rows * 800 / seconds,
          'flops_per_step': task.forward_flops(params) * config.eval.chunk,
          'compile_s': compile_s, 'rows_rendered': rows, 'chunk': config.eval.chunk,
          'microbatches': config.eval.microbatches, 'dtype': config.model.dtype}


def bench_img_fit(dtype):
  config = with_dtype(img_fit.get_config(), dtype)
  image = np.random.default_rng(0).uniform(size=(400, 400, 3)).astype(np.float32)
  task = tasks.make_task(config, image=image)
  compile_s, steps_per_s, flops_forward = time_training(task, config)
  # The backward pass costs twice the forward (gradients for inputs and weights of every layer).
  return {'steps_per_s': steps_per_s, 'rays_per_s': steps_per_s * config.train.batch_size,
          'flops_per_step': 3 * flops_forward * config.train.batch_size, 'compile_s': compile_s,
          'dtype': config.model.dtype}


def hash_traffic(config, samples):
  """Bytes the hash encoding gathers forward (and scatter-adds backward) for `samples` points:
  levels x 2^3 corners x features x 4 bytes each."""
  m = config.model
  return samples * m.hash_levels * 8 * m.hash_features * 4


def fast_cpu_config(dtype):
  config = with_dtype(lego_fast_cpu.get_config(), dtype)
  config.data.random_bkgd = False  # the synthetic images have no alpha; one uniform draw per ray costs nothing
  return config


def bench_nerf_fast_cpu(dtype):
  """configs/lego_fast_cpu.py as it trains: the hash-grid field marched through the occupancy grid.

  The budget of samples per step is fixed (batch_size x sum(march_samples)); on random images the
  grid stays mostly occupied, so every slot of it is used, as early in a real run. The grid's update
  (every grid_every steps) is inside the timed steps. Random pixels make no grid empty, so this is the
  step's cost, not a training run's steps/s on lego (which the README gives).
  """
  config = fast_cpu_config(dtype)
  task = tasks.make_task(config, scene=synthetic_scene(20, 200))
  compile_s, steps_per_s, flops_per_ray = time_training(task, config, min_steps=20)
  samples = config.train.batch_size * sum(config.model.march_samples)
  traffic = hash_traffic(config, samples)
  return {'steps_per_s': steps_per_s, 'rays_per_s': steps_per_s * config.train.batch_size,
          'samples_per_s': steps_per_s * samples, 'samples_per_step': samples,
          'gathered_gb_per_s': steps_per_s * traffic / 1e9, 'scattered_gb_per_s': steps_per_s * traffic / 1e9,
          'flops_per_step': 3 * flops_per_ray * config.train.batch_size, 'compile_s': compile_s,
          'dtype': config.model.dtype}


def bench_eval_fast_cpu(dtype, size=100):
  """Rendering a size x size view with configs/lego_fast_cpu.py's field and a fresh (all occupied)
  grid: the slowest case, every step in the box a candidate, eval.march_eval_samples per ray."""
  config = with_dtype(lego_fast_cpu.get_config(), dtype)
  config.data.random_bkgd = False  # the synthetic images have no alpha
  return time_rendering(config, size)


def real_capture_config(dtype):
  """configs/colmap_fast_cpu.py (the real-capture config: proposal sampler in contracted space)."""
  return with_dtype(colmap_fast_cpu.get_config(), dtype)


def capture_scene(num_views, size):
  """synthetic_scene with the per-view near/far a real capture's loader gives (data.bounds='scene')."""
  scene = synthetic_scene(num_views, size)
  return dataclasses.replace(scene, near=np.full(num_views, 0.2, np.float32),
                             far=np.full(num_views, 10.0, np.float32))


def bench_eval_real_cpu(dtype, size=128, rounds=2):
  """Rendering a size x size view with configs/colmap_fast_cpu.py's model as its evaluations do: two
  proposal fields and the field in contracted space (the cost does not depend on what was learned:
  every ray takes the same samples). Interleaved in this process, `rounds` times each, the same with
  hash_encode(fast_forward=False): the points unmaterialized and the einsum (what evaluation did before),
  so rays_per_s_before and speedup compare the two on the same machine at the same moment."""
  original = hashgrid.hash_encode
  best = {}
  for _ in range(rounds):
    for before in (True, False):
      hashgrid.hash_encode = functools.partial(original, fast_forward=False) if before else original
      try:
        entry = time_rendering(real_capture_config(dtype), size, scene=capture_scene(1, size))
      finally:
        hashgrid.hash_encode = original
      if entry['rays_per_s'] > best.get(before, {'rays_per_s': 0.0})['rays_per_s']:
        best[before] = entry
  return {**best[False], 'rays_per_s_before': best[True]['rays_per_s'],
          'speedup': best[False]['rays_per_s'] / best[True]['rays_per_s']}


def bench_hash_encoding(dtype, points=65536, repeats=5):
  """The hash encoding alone, configs/lego_fast_cpu.py's table: forward, and forward + backward with
  autodiff's gradient and with the hand-written one (hashgrid.interpolate_custom), best of `repeats`.

  A 'step' is one forward + backward of `points` points with autodiff (the one the configs use).
  """
  del dtype  # the encoding is float32
  config = lego_fast_cpu.get_config()
  m = config.model
  layout = hashgrid.grid_layout(3, m.hash_levels, m.hash_table_log2, m.hash_coarsest, m.hash_finest)
  x = jax.random.uniform(jax.random.PRNGKey(0), (points, 3))
  table = jax.random.uniform(jax.random.PRNGKey(1), (layout.total, m.hash_features), minval=-1e-4, maxval=1e-4)
  g = jax.random.normal(jax.random.PRNGKey(2), (points, m.hash_levels * m.hash_features))

  def best(f):
    jax.block_until_ready(f(table, x))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(f(table, x))
      times.append(time.perf_counter() - start)
    return min(times)

  forward = best(jax.jit(lambda t, p: hashgrid.hash_encode(p, t, layout)))
  both = {custom: best(jax.jit(jax.value_and_grad(
      lambda t, p: jnp.sum(g * hashgrid.hash_encode(p, t, layout, custom_vjp=custom)))))
          for custom in (False, True)}
  traffic = hash_traffic(config, points)
  return {'steps_per_s': 1 / both[False], 'rays_per_s': points / both[False], 'flops_per_step': 0.0,
          'compile_s': 0.0, 'forward_ms': 1e3 * forward, 'forward_backward_autodiff_ms': 1e3 * both[False],
          'forward_backward_custom_vjp_ms': 1e3 * both[True], 'gathered_gb_per_s_forward': traffic / forward / 1e9,
          'points': points, 'dtype': 'float32'}


BENCHMARKS = {'img_fit': bench_img_fit, 'nerf_paper': bench_nerf_paper, 'nerf_cpu': bench_nerf_cpu,
              'eval_nerf_paper': bench_eval_nerf_paper, 'eval_cpu': bench_eval_cpu, 'render_800': bench_render_800,
              'nerf_fast_cpu': bench_nerf_fast_cpu, 'eval_fast_cpu': bench_eval_fast_cpu,
              'eval_real_cpu': bench_eval_real_cpu,
              'hash_encoding': bench_hash_encoding}


# Entries with a profile (--profile): name -> (config for a dtype, image size, profile_step function[,
# the scene: synthetic_scene where not given]).
PROFILED = {
    'nerf_cpu': (lego_cpu_config, 100, profile_step.profile_training),
    'nerf_paper': (nerf_paper_config, 400, profile_step.profile_training),
    'eval_cpu': (lego_cpu_config, 100, profile_step.profile_rendering),
    'eval_nerf_paper': (paper_eval_config, 64, profile_step.profile_rendering),
    'nerf_fast_cpu': (fast_cpu_config, 200, profile_step.profile_training),
    'eval_real_cpu': (real_capture_config, 128, profile_step.profile_rendering, capture_scene),
}


def profile_entry(name, dtype, top=0):
  """profile_step.summary() of entry `name`'s step (a training step or a rendering chunk); the paper
  model's training step is traced twice (seconds each), the others ten times."""
  make_config, size, profile, *scene = PROFILED[name]
  config = make_config(dtype)
  views = 20 if profile is profile_step.profile_training else 1
  task = tasks.make_task(config, scene=(scene[0] if scene else synthetic_scene)(views, size))
  steps = 2 if name == 'nerf_paper' else 10
  return {**profile_step.summary(profile(task, config, steps=steps, top=top)), 'dtype': config.model.dtype}


def run_entry(name, args):
  """One entry in this process, with this process's matmul rate and peak memory."""
  matmul = {dtype: matmul_gflops(dtype) for dtype in fields.COMPUTE_DTYPES}
  if name == 'render_800':
    entry = bench_render_800(args.dtype, args.render_rows)
  else:
    entry = BENCHMARKS[name](args.dtype)
  entry['gflops_per_s'] = entry['flops_per_step'] * entry['steps_per_s'] / 1e9
  entry['matmul_gflops_per_s'] = matmul['float32']
  entry['fraction_of_matmul'] = entry['gflops_per_s'] / matmul['float32']
  # The same against products in the entry's own dtype (bfloat16 runs twice as fast where supported).
  entry['dtype_matmul_gflops_per_s'] = matmul[entry['dtype']]
  entry['fraction_of_dtype_matmul'] = entry['gflops_per_s'] / matmul[entry['dtype']]
  entry['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return entry


def run_in_subprocess(name, args):
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'entry.json')
    dtype = ['--dtype', args.dtype] if args.dtype else []
    subprocess.run([sys.executable, os.path.abspath(__file__), '--only', name, *dtype,
                    '--render-rows', str(args.render_rows), '--json', path],
                   check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
      return json.load(f)[name]


def make_parser():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--only', choices=sorted(BENCHMARKS), action='append',
                      help='run only this entry (repeatable)')
  parser.add_argument('--json', help='also write the results here as {name: {...}}')
  parser.add_argument('--dtype', choices=sorted(fields.COMPUTE_DTYPES),
                      help="every entry's model.dtype (default: each config's own; fraction_of_matmul "
                           "stays against float32)")
  parser.add_argument('--render-rows', type=int, default=0,
                      help='render_800: rows of the view to render (0: all on a GPU, 40 on a CPU)')
  parser.add_argument('--profile', action='store_true',
                      help=f'instead of timing, print where the step goes (benchmarks/profile_step.py) for '
                           f'the entries that have a profile: {", ".join(PROFILED)} (a CPU only)')
  parser.add_argument('--top', type=int, default=0, help='--profile: also list the N costliest operations')
  return parser


def main():
  args = make_parser().parse_args()
  if args.profile:
    results = {}
    for name in [n for n in args.only or PROFILED if n in PROFILED]:
      results[name] = profile_entry(name, args.dtype, args.top)
      profile_step.print_table(f'{name} ({results[name]["dtype"]})', results[name])
    if args.json:
      with open(args.json, 'w') as f:
        json.dump(results, f, indent=2)
    return
  names = args.only or list(BENCHMARKS)
  if len(names) == 1:
    results = {names[0]: run_entry(names[0], args)}
  else:
    results = {name: run_in_subprocess(name, args) for name in names}
  print(f'{jax.devices()[0].platform} x{jax.device_count()} ({jax.devices()[0].device_kind})')
  columns = ['steps_per_s', 'rays_per_s', 'gflops_per_s', 'matmul_gflops_per_s', 'fraction_of_matmul',
             'fraction_of_dtype_matmul', 'compile_s', 'peak_rss_mb']
  print(f'{"name":<16}{"dtype":>10}' + ''.join(f'{c:>26}' for c in columns))
  for name, entry in results.items():
    print(f'{name:<16}{entry["dtype"]:>10}' + ''.join(f'{entry[c]:>26.3f}' for c in columns))
  for name, entry in results.items():  # the entries' own figures (samples/s, bytes gathered, ...)
    extra = {k: v for k, v in entry.items() if k not in columns and k != 'dtype'}
    print(f'{name}: ' + ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in extra.items()))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2)
    print(f'Wrote {args.json}')


if __name__ == '__main__':
  main()
