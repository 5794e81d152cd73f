"""FLOPs of a function's matrix products, counted from its jaxpr: whatever the architecture.

A field or encoding added later is counted without a formula of its own: the count walks every
dot_general the function traces (inside jit, custom gradients, scans and conditionals too) and adds
2 x the multiply-adds, the convention of the benchmarks' matmul rate. Elementwise work (encodings,
activations, compositing) is not counted: it is not what the rate measures.
"""

import math

import jax


def _dot_flops(eqn):
  (lhs_contract, _), _ = eqn.params['dimension_numbers']
  lhs = eqn.invars[0].aval.shape
  # Each output element (batch and free dimensions) is one dot product over the contracted ones.
  return 2 * math.prod(lhs[i] for i in lhs_contract) * math.prod(eqn.outvars[0].aval.shape)


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _sub_jaxprs(item)


def jaxpr_product_flops(jaxpr):
  """2 x multiply-adds of every dot_general in `jaxpr` (a jax.extend.core.Jaxpr), sub-jaxprs included.

  A scan's body counts `length` times; a conditional counts its costliest branch; a while loop's body
  once (its trip count is not known when tracing).
  """
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      total += _dot_flops(eqn)
      continue
    inner = [jaxpr_product_flops(j) for value in eqn.params.values() for j in _sub_jaxprs(value)]
    if not inner:
      continue
    if eqn.primitive.name == 'scan':
      total += eqn.params['length'] * sum(inner)
    elif eqn.primitive.name == 'cond':
      total += max(inner)
    else:
      total += sum(inner)
  return total


def product_flops(fn, *args):
  """Forward FLOPs of the matrix products `fn(*args)` performs (traced, never run)."""
  return jaxpr_product_flops(jax.make_jaxpr(fn)(*args).jaxpr)
