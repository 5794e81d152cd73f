"""Where a jitted step's time goes, from an XLA trace: the matrix products and each part of the pipeline.

`python benchmarks/run.py --profile [--only NAME] [--dtype DTYPE]` prints the split for the entries
that have one (run.py's PROFILED); the nerf_cpu entry always reports its time outside the products.

The step runs under jax.profiler; the trace has an event for every operation the CPU runtime executes
(named after its HLO instruction, and an `end: NAME` event when it completes: later than its event's
end for a product handed to the thread pool). Each operation is timed from its start to its completion, and
each moment of the traced span is shared equally between the operations running then (the runtime
runs independent ones at once), so the parts add up to the span; moments with none running are the
runtime's. Operations are sorted into the matrix products (dot instructions and fusions holding one,
what `flops.product_flops` counts and the matmul rate measures) and the parts of the pipeline that
issued the others, found from the compiled HLO's metadata: the Python function that made each
instruction (its stack frame) and the flax module path in its op_name.
"""

import collections
import glob
import gzip
import json
import os
import re
import shutil
import tempfile
import time

import jax

PRODUCTS = 'matrix products'
RUNTIME = 'between operations (runtime, launch, waits)'
CONTROL_FLOW = ('while', 'conditional', 'call')  # their events enclose their bodies' operations


def _parts_table():
  """(part, test(file, function, op_name)) pairs, the first that matches wins; products come first,
  by opcode. file: parse_frames' name of the Python file that made the instruction."""
  def files(*names):
    return lambda file, function, op: file in names

  return (
      ('encoding', lambda file, function, op: file == 'encoding.py' or '/encoding/' in op or
       '/dir_encoding/' in op),
      ('sampling: searchsorted', lambda file, function, op: 'searchsorted' in op),
      ('sampling: hierarchical (merge and sort)', lambda file, function, op: file == 'sampling.py' and
       function == 'hierarchical_samples'),
      ('points along rays', lambda file, function, op: file == 'sampling.py' and function == 'points_along'),
      ('sampling: pdf and stratified', files('sampling.py')),
      ('compositing', files('rendering.py')),
      ('field: bias, activations, concatenations', lambda file, function, op: file in (
          'mlp.py', 'layers.py', 'ngp.py', 'hashgrid.py', 'sh.py') or file.startswith('flax/linen/')),
      ('loss and metrics', lambda file, function, op: file in ('metrics.py', 'losses.py') or
       (file == 'nerf.py' and function == 'loss')),
      ('optimizer', lambda file, function, op: file in ('optim.py', 'flax/training/train_state.py') or
       file.startswith('optax/')),
      ('batch: pixels, rays, keys', lambda file, function, op: file in ('batching.py', 'pinhole.py') or
       (file == 'scene.py' and function in ('sample_batch', 'batch_rays'))),
      ('microbatch accumulation', files('train.py', 'parallel.py', 'evaluate.py')),
  )


PARTS = _parts_table()


def parse_instructions(hlo):
  """{instruction name: (opcode, op_name, stack_frame_id or None, called computation or None)} and
  {computation name: [its instruction lines]}, from a compiled module's text (as_text())."""
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


def parse_frames(hlo):
  """{stack_frame_id: (file, function name)} of each frame's own location (the line that made the
  instruction), from the module text's FileNames / FunctionNames / FileLocations / StackFrames tables;
  {} where the text has none. file: a project file's base name ('sampling.py'), an installed
  package's path inside site-packages ('optax/_src/transform.py')."""
  tables, section = collections.defaultdict(dict), None
  for line in hlo.splitlines():
    if line in ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames'):
      section = line
      continue
    m = re.match(r'^(\d+) (.*)$', line)
    if section and m:
      tables[section][int(m.group(1))] = m.group(2)
    elif section and not line.strip():
      section = None
  files, functions, locations = tables['FileNames'], tables['FunctionNames'], tables['FileLocations']
  frames = {}
  for frame, text in tables['StackFrames'].items():
    location_id = int(re.search(r'file_location_id=(\d+)', text).group(1))
    location = dict(re.findall(r'(\w+)=(\d+)', locations[location_id]))
    path = files[int(location['file_name_id'])].strip('"')
    function = functions[int(location['function_name_id'])].strip('"').split('.')[-1]
    file = path.split('site-packages/')[1] if 'site-packages/' in path else os.path.basename(path)
    frames[frame] = (file, function)
  return frames


def part_of(instruction, computations, frames):
  """The part one instruction (parse_instructions' tuple) belongs to: 'matrix products: forward' or
  ': backward' (autodiff's transpose), a PARTS name, or 'other (opcode)'."""
  opcode, op_name, frame, calls = instruction
  body = '\n'.join(computations.get(calls, ())) if calls else ''
  if opcode in ('dot', 'convolution') or (opcode == 'fusion' and re.search(r' dot\(', body)):
    return f'{PRODUCTS}: {"backward" if "transpose(" in op_name else "forward"}'
  file, function = frames.get(frame, ('', ''))
  return next((part for part, test in PARTS if test(file, function, op_name)), f'other ({opcode})')


def operation_intervals(events, instructions):
  """[(start, end, name)] in microseconds of every operation in the trace's complete events, zero-length
  ones dropped and control flow left out. A product the runtime hands to its thread pool (a dot
  instruction) completes after its event closes: it runs to the end of its `end: NAME` event, matched
  in order per name. Other operations keep their event's span: their `end:` event can come later only
  because the thread that records it was busy with something else."""
  starts, ends = collections.defaultdict(list), collections.defaultdict(list)
  for e in events:
    if e.get('ph') != 'X':
      continue
    name = e['name']
    if name.startswith('end: ') and name[5:] in instructions:
      ends[name[5:]].append(e['ts'] + e['dur'])
    elif name in instructions and instructions[name][0] not in CONTROL_FLOW:
      starts[name].append((e['ts'], e['ts'] + e['dur']))
  intervals = []
  for name, spans in starts.items():
    spans.sort()
    done = sorted(ends[name])
    asynchronous = instructions[name][0] in ('dot', 'convolution')
    paired = asynchronous and len(done) == len(spans)  # else each event's own span
    for i, (start, end) in enumerate(spans):
      end = max(end, done[i]) if paired else end
      if end > start:
        intervals.append((start, end, name))
  return intervals


def attribute(hlo, events, top=0):
  """({part: microseconds of wall time}, traced span in microseconds, number of operations) from the
  trace's complete events and the compiled module's text. Each moment of the span is shared equally
  between the operations running then; moments with none go to RUNTIME. With top=N, prints the N
  costliest instructions (microseconds, name, part, op_name)."""
  instructions, computations = parse_instructions(hlo)
  intervals = operation_intervals(events, instructions)
  if not intervals:
    return collections.Counter(), 0.0, 0
  boundaries = sorted([(start, 1, i) for i, (start, _, _) in enumerate(intervals)] +
                      [(end, -1, i) for i, (_, end, _) in enumerate(intervals)])
  held, active = collections.Counter(), set()
  begin = last = boundaries[0][0]
  idle = 0.0
  for ts, kind, i in boundaries:
    if active:
      for j in active:
        held[intervals[j][2]] += (ts - last) / len(active)
    else:
      idle += ts - last
    last = ts
    (active.add if kind == 1 else active.discard)(i)
  frames = parse_frames(hlo)
  parts, listing = collections.Counter(), []
  for name, micros in held.items():
    part = part_of(instructions[name], computations, frames)
    parts[part] += micros
    listing.append((micros, name, part, instructions[name][1]))
  parts[RUNTIME] += idle
  for micros, name, part, op_name in sorted(listing, reverse=True)[:top]:
    print(f'{micros:10.0f} us {name:32s} {part:40s} {op_name[-90:]}')
  return parts, last - begin, len(intervals)


def profile(step, args, advance=lambda args, outputs: args, steps=10, warmup=2, top=0):
  """The jitted `step(*args)`, `steps` calls timed as they run and `steps` more under the profiler;
  advance(args, outputs) gives the next call's args (a training state carried on).

  Returns {'step_ms': wall time a call without the profiler, 'traced_step_ms': with it (the tracing
  costs a few percent, which lands in the runtime's part), 'operations_per_step', 'parts_ms_per_step':
  {part: ms per call}, summing to traced_step_ms}.
  """
  if steps < 1:
    raise ValueError(f'profile needs steps >= 1, got {steps}')
  compiled = step.lower(*args).compile()  # called below, so the trace's names are this text's
  hlo = compiled.as_text()

  def run(calls):
    nonlocal args
    start = time.perf_counter()
    for _ in range(calls):
      outputs = compiled(*args)
      args = advance(args, outputs)
    jax.block_until_ready(outputs)
    return (time.perf_counter() - start) / calls

  run(warmup)
  wall = run(steps)
  directory = tempfile.mkdtemp()
  try:
    jax.profiler.start_trace(directory, create_perfetto_trace=True)
    try:
      traced_wall = run(steps)
    finally:
      jax.profiler.stop_trace()
    found = glob.glob(os.path.join(directory, '**', 'perfetto_trace.json.gz'), recursive=True)
    if not found:
      raise RuntimeError(f'jax.profiler wrote no perfetto_trace.json.gz under {directory}')
    with gzip.open(found[0]) as f:
      trace = json.load(f)
  finally:
    shutil.rmtree(directory, ignore_errors=True)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  parts, traced, count = attribute(hlo, events, top)
  if not count:
    raise RuntimeError('the trace holds no operation of the compiled step (profile_step reads the CPU '
                       'runtime\'s events; on another backend use its own profiler)')
  # The traced span starts at the first operation: the time before it is the runtime's too.
  parts[RUNTIME] += max(0.0, 1e6 * traced_wall * steps - traced)
  return {'step_ms': 1e3 * wall, 'traced_step_ms': 1e3 * traced_wall, 'operations_per_step': count / steps,
          'parts_ms_per_step': {part: micros / steps / 1e3 for part, micros in parts.items()}}


def profile_training(task, config, steps=10, top=0):
  """profile() of task's jitted training iteration, with the state carried from step to step."""
  from nerf_jax import batching, parallel, train
  state = train.create_train_state(config, task)
  data = parallel.put(task.train_data(), parallel.replicated(parallel.make_mesh()))
  iteration = train.make_train_iteration(task, batching.BatchPlan.from_config(config.train),
                                         config.train.microbatches)
  return profile(iteration, (state, data), lambda args, outputs: (outputs[0], args[1]), steps=steps,
                 top=top)


def profile_rendering(task, config, steps=10, top=0):
  """profile() of one rendering chunk (eval.chunk rays of the first view of data.split, in
  eval.microbatches parts) with the freshly initialised model, as --mode evaluate renders it."""
  from nerf_jax import evaluate, train
  params = train.create_train_state(config, task).variables
  evaluator = evaluate.Evaluator(task, config.eval.chunk, microbatches=config.eval.microbatches)
  view = next(task.eval_views(config.data.split, (0, 1, 1)))
  chunk = evaluator._place(jax.tree_util.tree_map(lambda x: x[:config.eval.chunk], view.inputs))
  return profile(evaluator._predict, (params, chunk), steps=steps, top=top)


def summary(profiled, step_ms=None):
  """profile()'s result with 'products_ms_per_step' and 'outside_products_ms_per_step': a step's wall
  time (step_ms, e.g. from a longer timing; default profile's own) less its products' (runtime
  overhead counts as outside), and the parts sorted, largest first."""
  parts = profiled['parts_ms_per_step']
  products = sum(ms for part, ms in parts.items() if part.startswith(PRODUCTS))
  step_ms = profiled['step_ms'] if step_ms is None else step_ms
  return {**profiled, 'products_ms_per_step': products, 'outside_products_ms_per_step': step_ms - products,
          'parts_ms_per_step': dict(sorted(parts.items(), key=lambda kv: -kv[1]))}


def print_table(name, result):
  """summary()'s result as a markdown table of ms per step and share of the traced step."""
  step = result['traced_step_ms']
  print(f'{name}: {result["step_ms"]:.1f} ms a step ({step:.1f} traced, {result["operations_per_step"]:.0f} '
        f'operations); products {result["products_ms_per_step"]:.1f} ms, outside them '
        f'{result["outside_products_ms_per_step"]:.1f} ms.')
  print('| part | ms per step | share of the traced step |\n|---|---|---|')
  small = 0.0
  for part, ms in result['parts_ms_per_step'].items():
    if ms >= 0.005 * step:
      print(f'| {part} | {ms:.1f} | {ms / step:.1%} |')
    else:
      small += ms
  print(f'| the rest (each under 0.5%) | {small:.1f} | {small / step:.1%} |')
