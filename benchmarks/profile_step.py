"""Where a jitted step's time goes: python benchmarks/profile_step.py [--entry nerf_cpu] [--dtype DTYPE]

Runs the step under jax.profiler, reads the time of every XLA operation (each thunk the CPU runtime
executes) from the trace, and sorts it into the matrix products and the parts of the pipeline that
issued each other operation, by the Python function and flax module recorded in the compiled HLO's
metadata (its stack frames and op_name). The products are what `flops.product_flops` counts and the
matmul rate measures; everything else is the time the issue calls "outside the products".

Prints a table of ms per step and the share of each part, products split into forward and backward;
with --json, writes it too. `benchmarks/run.py` reports the same split for its nerf entries
(`products_ms_per_step`, `outside_products_ms_per_step`).
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

# (part, test on the innermost nerf_jax/optax/flax frame's "file:function" and the op_name), first match
# wins. Products are found by opcode before these.
PARTS = (
    ('encoding', lambda where, op: 'encoding.py:' in where or '/encoding/' in op or '/dir_encoding/' in op),
    ('sampling: sort', lambda where, op: 'sampling.py:hierarchical_samples' in where),
    ('sampling: searchsorted', lambda where, op: 'searchsorted' in op or 'sampling.py:' in where and 'search' in where),
    ('sampling: pdf and stratified', lambda where, op: 'sampling.py:' in where),
    ('compositing', lambda where, op: 'rendering.py:' in where),
    ('points along rays', lambda where, op: 'models.py:' in where),
    ('field: bias, activations, concatenations', lambda where, op: any(
        f in where for f in ('mlp.py:', 'layers.py:', 'linear.py:', 'activation', 'ngp.py:', 'hashgrid.py:',
                             'sh.py:'))),
    ('loss and metrics', lambda where, op: any(f in where for f in ('metrics.py:', 'losses.py:', 'nerf.py:loss'))),
    ('optimizer', lambda where, op: any(f in where for f in ('optax', 'train_state.py:', 'optim.py:'))),
    ('batch: pixels, rays, keys', lambda where, op: any(
        f in where for f in ('batching.py:', 'camera.py:', 'nerf.py:sample_batch', 'random.py:', 'prng.py:'))),
    ('microbatch accumulation', lambda where, op: 'train.py:' in where or 'parallel.py:' in where),
)
PRODUCTS = 'matrix products'
RUNTIME = 'between operations (runtime, launch, waits)'


def _instructions(hlo):
  """{name: (opcode, op_name, stack_frame_id or None, called computation or None)} for every
  instruction of the compiled module's text, and {computation: body text}."""
  instructions, computations, current = {}, {}, None
  for line in hlo.splitlines():
    header = re.match(r'^(?:ENTRY )?%([\w.\-]+) \(', line)
    if header:
      current = header.group(1)
      computations[current] = []
      continue
    m = re.match(r'^\s+(?:ROOT )?%([\w.\-]+) = .*? ([\w\-]+)\(', line)
    if not m:
      continue
    if current is not None:
      computations[current].append(line)
    op_name = re.search(r'op_name="([^"]*)"', line)
    frame = re.search(r'stack_frame_id=(\d+)', line)
    calls = re.search(r'calls=%([\w.\-]+)', line)
    instructions[m.group(1)] = (m.group(2), op_name.group(1) if op_name else '',
                                int(frame.group(1)) if frame else None, calls.group(1) if calls else None)
  return instructions, computations


def _frames(hlo):
  """stack_frame_id -> 'file:function' of the innermost frame in the project or a library it calls
  (nerf_jax, optax, flax), from the HLO text's FileNames / FunctionNames / FileLocations / StackFrames."""
  tables, section = collections.defaultdict(dict), None
  for line in hlo.splitlines():
    if line in ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames'):
      section = line
      continue
    m = re.match(r'^(\d+) (.*)$', line)
    if section and m:
      tables[section][int(m.group(1))] = m.group(2)
    elif section and line.strip() == '':
      section = None
  files, functions = tables['FileNames'], tables['FunctionNames']

  def location(i):
    fields = dict(re.findall(r'(\w+)=(\d+)', tables['FileLocations'][i]))
    path = files[int(fields['file_name_id'])].strip('"')
    return f'{os.path.basename(path) if "site-packages" not in path else path.split("site-packages/")[1]}:' \
           f'{functions[int(fields["function_name_id"])].strip(chr(34)).split(".")[-1]}'

  result = {}
  for i, text in tables['StackFrames'].items():
    fields = dict(re.findall(r'(\w+)=(\d+)', text))
    result[i] = location(int(fields['file_location_id']))
  return result


CONTROL_FLOW = ('while', 'conditional', 'call')


def _part(instruction, computations, frames):
  """The part of the pipeline one operation belongs to (PRODUCTS: forward / backward, or PARTS')."""
  opcode, op_name, frame, calls = instruction
  body = '\n'.join(computations.get(calls, ())) if calls else ''
  if opcode in ('dot', 'convolution') or (opcode == 'fusion' and re.search(r' dot\(', body)):
    return f'{PRODUCTS}: {"backward" if "transpose(" in op_name else "forward"}', ''
  where = frames.get(frame, '') if frame is not None else ''
  return next((p for p, test in PARTS if test(where, op_name)), f'other ({opcode})'), where


def attribute(hlo, events, top=None):
  """{part: microseconds of wall time} from the trace's complete events and the compiled HLO text.

  The CPU runtime runs independent operations at once on its threads: each moment of the trace is
  shared equally between the operations running then, so the parts add up to the traced time and a
  part's figure is the wall time it held (idle moments go to the runtime). With top=N, also prints the
  N costliest operations (microseconds, name, part, Python function, op_name).
  """
  instructions, computations = _instructions(hlo)
  frames = _frames(hlo)
  ops = [e for e in events if e.get('ph') == 'X' and e['name'] in instructions
         and instructions[e['name']][0] not in CONTROL_FLOW]
  boundaries = []
  for i, e in enumerate(ops):
    boundaries += [(e['ts'], 1, i), (e['ts'] + e['dur'], -1, i)]
  boundaries.sort()
  held, active, last = collections.Counter(), set(), boundaries[0][0]
  begin, idle = last, 0.0
  for ts, kind, i in boundaries:
    if active:
      for j in active:
        held[ops[j]['name']] += (ts - last) / len(active)
    else:
      idle += ts - last
    last = ts
    (active.add if kind == 1 else active.discard)(i)
  parts, listing = collections.Counter(), []
  for name, micros in held.items():
    part, where = _part(instructions[name], computations, frames)
    parts[part] += micros
    listing.append((micros, name, part, where, instructions[name][1]))
  parts[RUNTIME] = idle
  for micros, name, part, where, op_name in sorted(listing, reverse=True)[:top or 0]:
    print(f'{micros:10.0f} us {name:32s} {part:28s} {where:40s} {op_name[-90:]}')
  return parts, last - begin, len(ops)


def profile(step, args, advance=lambda args, outputs: args, steps=10, warmup=2, top=None):
  """The jitted `step(*args)`, `steps` calls timed as they run and `steps` more under the profiler;
  advance(args, outputs) gives the next call's args (a training state carried on).

  Returns {'step_ms': wall time a step without the profiler, 'traced_step_ms': with it (the tracing
  costs a few percent, which lands in the runtime's part), 'operations_per_step', 'parts_ms_per_step':
  {part: ms}, summing to traced_step_ms}.
  """
  hlo = step.lower(*args).compile().as_text()
  def run(calls):
    nonlocal args
    start = time.perf_counter()
    for _ in range(calls):
      outputs = step(*args)
      args = advance(args, outputs)
    jax.block_until_ready(outputs)
    return (time.perf_counter() - start) / calls

  run(warmup)

  wall = run(steps)
  directory = tempfile.mkdtemp()
  try:
    jax.profiler.start_trace(directory, create_perfetto_trace=True)
    traced_wall = run(steps)
    jax.profiler.stop_trace()
    with gzip.open(glob.glob(os.path.join(directory, '**', 'perfetto_trace.json.gz'), recursive=True)[0]) as f:
      trace = json.load(f)
  finally:
    shutil.rmtree(directory, ignore_errors=True)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  parts, traced, count = attribute(hlo, events, top)
  # The traced span starts at the first operation: the time before it is the runtime's too.
  parts[RUNTIME] += max(0.0, 1e6 * traced_wall * steps - traced)
  return {'step_ms': 1e3 * wall, 'traced_step_ms': 1e3 * traced_wall, 'operations_per_step': count / steps,
          'parts_ms_per_step': {part: micros / steps / 1e3 for part, micros in parts.items()}}


def profile_training(task, config, steps=10, top=None):
  """profile() of task's training iteration, as benchmarks/run.py times it."""
  from nerf_jax import batching, parallel, train
  state = train.create_train_state(config, task)
  data = parallel.put(task.train_data(), parallel.replicated(parallel.make_mesh()))
  iteration = train.make_train_iteration(task, batching.BatchPlan.from_config(config.train),
                                         config.train.microbatches)
  return profile(iteration, (state, data), lambda args, outputs: (outputs[0], args[1]), steps=steps,
                 top=top)


def profile_rendering(task, config, steps=10, top=None):
  """profile() of one rendering chunk (eval.chunk rays in eval.microbatches parts), as --mode evaluate
  renders it, with the freshly initialised model."""
  from nerf_jax import evaluate, train
  params = train.create_train_state(config, task).params
  evaluator = evaluate.Evaluator(task, config.eval.chunk, microbatches=config.eval.microbatches)
  view = next(task.eval_views(config.data.split, (0, 1, 1)))
  chunk = evaluator._place(jax.tree_util.tree_map(lambda x: x[:config.eval.chunk], view.inputs))
  return profile(evaluator._predict, (params, chunk), steps=steps, top=top)


def summary(profiled):
  """profile()'s result with 'products_ms_per_step' and 'outside_products_ms_per_step' (the step's
  untraced wall time less the products': runtime overhead counts as outside), parts sorted."""
  parts = profiled['parts_ms_per_step']
  products = sum(ms for part, ms in parts.items() if part.startswith(PRODUCTS))
  return {**profiled, 'products_ms_per_step': products, 'outside_products_ms_per_step': profiled['step_ms'] - products,
          'parts_ms_per_step': dict(sorted(parts.items(), key=lambda kv: -kv[1]))}


def print_table(name, result):
  step = result['traced_step_ms']
  print(f'{name}: {result["step_ms"]:.1f} ms a step ({step:.1f} traced, {result["operations_per_step"]:.0f} '
        f'operations); products {result["products_ms_per_step"]:.1f} ms, outside them '
        f'{result["outside_products_ms_per_step"]:.1f} ms. Shares of the traced step:')
  print(f'| part | ms per step | share of the step |\n|---|---|---|')
  for part, ms in result['parts_ms_per_step'].items():
    if ms >= 0.005 * step:
      print(f'| {part} | {ms:.1f} | {ms / step:.1%} |')
  small = sum(ms for ms in result['parts_ms_per_step'].values() if ms < 0.005 * step)
  print(f'| the rest (each under 0.5%) | {small:.1f} | {small / step:.1%} |')


ENTRIES = {  # name: (config module, image size, profile function, what a step is)
    'nerf_cpu': ('lego_cpu', 100, profile_training, 'training step'),
    'nerf_paper': ('lego', 400, profile_training, 'training step'),
    'eval_cpu': ('lego_cpu', 100, profile_rendering, 'rendering chunk'),
    'eval_paper': ('lego', 64, profile_rendering, 'rendering chunk'),
}


def entry_config(entry, dtype=None):
  """(config, image size) of an entry: benchmarks/run.py's, the paper model in microbatches of 128
  rays on a CPU (its nerf_paper and eval_nerf_paper entries)."""
  import importlib
  from benchmarks import run as bench  # the entries' configs and synthetic scenes
  name, size, _, _ = ENTRIES[entry]
  config = bench.with_dtype(importlib.import_module(f'configs.{name}').get_config(), dtype)
  if name == 'lego' and jax.default_backend() == 'cpu':
    config.train.microbatches, config.eval.microbatches = 8, config.eval.chunk // 128
  return config, size


def run_entry(entry, dtype=None, steps=None, top=None):
  """summary() of one entry's profile, with its dtype and what a step is."""
  from benchmarks import run as bench
  from nerf_jax import tasks
  config, size = entry_config(entry, dtype)
  _, _, fn, what = ENTRIES[entry]
  task = tasks.make_task(config, scene=bench.synthetic_scene(20 if what == 'training step' else 1, size))
  steps = steps or (2 if entry == 'nerf_paper' else 10)
  return {**summary(fn(task, config, steps=steps, top=top)), 'dtype': config.model.dtype, 'step': what}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--entry', choices=sorted(ENTRIES), action='append',
                      help='profile this entry (repeatable; default all)')
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), help="model.dtype (default: the config's)")
  parser.add_argument('--steps', type=int, help='traced steps (default 10, the paper step 2)')
  parser.add_argument('--top', type=int, default=0, help='also list the N costliest operations')
  parser.add_argument('--json', help='also write {entry: result} here')
  args = parser.parse_args()
  results = {}
  for entry in args.entry or sorted(ENTRIES):
    results[entry] = run_entry(entry, args.dtype, args.steps, args.top)
    print_table(f'{entry} ({results[entry]["dtype"]}, a {results[entry]["step"]})', results[entry])
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
