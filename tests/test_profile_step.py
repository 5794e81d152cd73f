"""benchmarks/profile_step.py's reading of a trace: a hand-written module text and events."""

import pytest

from benchmarks import profile_step

HLO = '''HloModule jit_step, is_scheduled=true

FileNames
1 "/repo/nerf_jax/encoding.py"
2 "/venv/lib/python3.11/site-packages/optax/_src/transform.py"

FunctionNames
1 "frequency_encoding"
2 "scale_by_adam.<locals>.update_fn"

FileLocations
1 {file_name_id=1 function_name_id=1 line=40 end_line=40 column=2 end_column=30}
2 {file_name_id=2 function_name_id=2 line=9 end_line=9 column=2 end_column=30}

StackFrames
1 {file_location_id=1 parent_frame_id=1}
2 {file_location_id=2 parent_frame_id=1}

%fused_computation.1 (p0: f32[4,4], p1: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  %p1 = f32[4,4]{1,0} parameter(1)
  ROOT %dot.9 = f32[4,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_computation.2 (p0: f32[4,4]) -> f32[4,4] {
  %p0.2 = f32[4,4]{1,0} parameter(0)
  ROOT %sine.1 = f32[4,4]{1,0} sine(%p0.2)
}

ENTRY %main.3 (a: f32[4,4]) -> f32[4,4] {
  %a = f32[4,4]{1,0} parameter(0)
  %sine_fusion = f32[4,4]{1,0} fusion(%a), kind=kLoop, calls=%fused_computation.2, metadata={op_name="jit(step)/sin" stack_frame_id=1}
  %dot.3 = f32[4,4]{1,0} dot(%a, %a), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(step)/jvp(NeRF)/fine/trunk_0/dot_general"}
  %add_fusion = f32[4,4]{1,0} fusion(%a), kind=kLoop, calls=%fused_computation.2, metadata={op_name="jit(step)/add" stack_frame_id=2}
  %ynn_fusion = f32[4,4]{1,0} fusion(%sine_fusion, %a), kind=kCustom, calls=%fused_computation.1, metadata={op_name="jit(step)/transpose(jvp(NeRF))/fine/trunk_0/dot_general"}
  ROOT %while.1 = f32[4,4]{1,0} while(%a), condition=%fused_computation.2, body=%fused_computation.2
}
'''


def event(name, ts, dur):
  return {'ph': 'X', 'name': name, 'ts': ts, 'dur': dur, 'tid': 1}


def test_parts_share_the_span_and_asynchronous_products_run_until_their_end_event():
  events = [
      event('while.1', 0, 60),  # encloses the others: not an operation of its own
      event('ThunkExecutor::Execute', 0, 60),  # the runtime's own events are not operations
      event('sine_fusion', 0, 10), event('end: sine_fusion', 35, 0.1),  # recorded late: a fusion ran 0-10
      event('dot.3', 10, 2), event('end: dot.3', 30, 0.1),  # handed to the thread pool, done at 30.1
      event('add_fusion', 12, 8),  # runs meanwhile: [12, 20) is shared between the two
      event('ynn_fusion', 40, 10),  # after an idle 9.9
      event('add_fusion', 55, 0),  # zero length: nothing
  ]
  parts, span, count = profile_step.attribute(HLO, events)
  assert count == 4 and span == pytest.approx(50.0)
  assert parts['encoding'] == pytest.approx(10.0)
  assert parts['matrix products: forward'] == pytest.approx(2.0 + 4.0 + 10.1)
  assert parts['optimizer'] == pytest.approx(4.0)  # an optax frame
  assert parts['matrix products: backward'] == pytest.approx(10.0)  # a fusion holding a dot, transposed
  assert parts[profile_step.RUNTIME] == pytest.approx(9.9)
  assert sum(parts.values()) == pytest.approx(span)


def test_frames_name_the_project_file_or_the_package_path():
  frames = profile_step.parse_frames(HLO)
  assert frames == {1: ('encoding.py', 'frequency_encoding'), 2: ('optax/_src/transform.py', 'update_fn')}


def test_a_trace_without_the_steps_operations_gives_nothing():
  parts, span, count = profile_step.attribute(HLO, [event('some_other_fusion', 0, 5)])
  assert (dict(parts), span, count) == ({}, 0.0, 0)
