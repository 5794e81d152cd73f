"""Multiresolution hash encoding (Müller et al. 2022, instant-NGP) in plain JAX: gathers forward,
scatter-adds backward, nothing compiled outside XLA.

L levels of grids from `coarsest` to `finest` cells per side of the unit cube (growth factor
b = exp((ln finest - ln coarsest) / (L - 1))); level l has resolution N_l = floor(coarsest * b^l).
A level whose (N_l + 1)^d vertices fit in the table indexes them directly (no collisions); a finer
one hashes vertex (x_0, ..., x_{d-1}) to (x_0 * 1 XOR x_1 * 2654435761 XOR x_2 * 805459861) mod T,
in uint32 arithmetic as in the paper. Each level's F features are interpolated from the 2^d corners
of the input's cell (trilinear in 3-D, bilinear in 2-D). All levels live in one flat table, level l
at rows offsets[l] .. offsets[l] + sizes[l], so one gather (and, backwards, one scatter-add) serves
every level.
"""

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import config_rules

PRIMES = (1, 2654435761, 805459861)

# Levels, features per level, log2 of the table size, coarsest and finest cells per side of model.box.
KEYS = {
    'model.hash_levels': (16, "'hashgrid' encoding: resolution levels"),
    'model.hash_features': (2, "'hashgrid' encoding: features per level"),
    'model.hash_table_log2': (19, "'hashgrid' encoding: log2 of each level's table rows"),
    'model.hash_coarsest': (16, "'hashgrid' encoding: cells per side of model.box at the coarsest level"),
    'model.hash_finest': (2048, "'hashgrid' encoding: ... and at the finest"),
    'model.hash_custom_vjp': (False, "'hashgrid' encoding: the hand-written backward pass (benchmarks: no faster "
                                     "than autodiff)"),
}
SAFE = ('model.hash_custom_vjp',)  # the same function either way


def check(config):
  problems, m = [], config.model
  for key in ('model.hash_levels', 'model.hash_features', 'model.hash_coarsest'):
    config_rules.in_range(problems, config, key, 1, integer=True)
  # 16 levels of 2^24 rows are 2^28 row indices: well inside int32; more would overflow it.
  config_rules.in_range(problems, config, 'model.hash_table_log2', 4, 24, integer=True)
  if m.hash_finest < m.hash_coarsest:
    problems.append(f'model.hash_finest={m.hash_finest} must be >= model.hash_coarsest={m.hash_coarsest}')
  return problems


@dataclasses.dataclass(frozen=True)
class GridLayout:
  """Static description of the levels (numpy, for jit): resolutions, table rows and their offsets.

  dims: input dimensions d (2 or 3); resolutions: int [L] cells per side N_l; sizes: int [L] table rows
  of each level, min(T, (N_l + 1)^d); offsets: int [L] first row of each level; dense: bool [L], True
  where the level is indexed directly; total: rows of the flat table.
  """
  dims: int
  resolutions: tuple
  sizes: tuple
  offsets: tuple
  dense: tuple
  total: int


def grid_layout(dims, num_levels, table_log2, coarsest, finest):
  """The GridLayout of L = num_levels levels from `coarsest` to `finest` cells per side, tables of
  at most 2^table_log2 rows."""
  if dims > len(PRIMES):
    raise ValueError(f'hash grids take up to {len(PRIMES)} input dimensions, got {dims}')
  table = 2 ** table_log2
  growth = math.exp((math.log(finest) - math.log(coarsest)) / max(num_levels - 1, 1))
  resolutions, sizes, dense = [], [], []
  for level in range(num_levels):
    # The small epsilon keeps floor(16 * b^l) from landing one below an exact integer.
    res = int(math.floor(coarsest * growth ** level + 1e-6))
    vertices = (res + 1) ** dims
    resolutions.append(res)
    dense.append(vertices <= table)
    sizes.append(min(vertices, table))
  offsets = tuple(int(o) for o in np.cumsum([0] + sizes[:-1]))
  return GridLayout(dims, tuple(resolutions), tuple(sizes), offsets, tuple(dense), int(sum(sizes)))


def corner_indices_and_weights(x, layout):
  """Table rows of the 2^d cell corners around each input at every level, and their weights.

  x: float32 [n, d] in [0, 1] (clipped there)
  returns rows int32 [n, L, 2^d] into the flat table, weights float32 [n, L, 2^d] (summing to 1)
  """
  d = layout.dims
  num_levels = len(layout.resolutions)
  res = jnp.asarray(layout.resolutions, jnp.float32)  # [L]
  scaled = jnp.clip(x, 0.0, 1.0)[:, None, :] * res[None, :, None]  # [n, L, d]
  # Clip the cell so x = 1 lands in the last cell with fraction 1, not one past the grid.
  cell = jnp.minimum(jnp.floor(scaled), res[None, :, None] - 1.0)
  frac = scaled - cell
  cell = cell.astype(jnp.uint32)
  # Both the index and the weight are separable over axes: a corner's index combines one term per
  # axis (a sum for direct indexing, an XOR for hashing), its weight multiplies one factor per axis.
  # So each axis's two terms (cell, cell + 1) are computed once, [n, L, 2], and combined by
  # broadcasting to the 2^d corners: d times less integer work than per corner.
  weight = None
  for k in range(d):
    factor = jnp.stack([1.0 - frac[..., k], frac[..., k]], axis=-1)  # [n, L, 2]
    factor = factor.reshape((x.shape[0], num_levels) + (1,) * (d - 1 - k) + (2,) + (1,) * k)
    weight = factor if weight is None else weight * factor
  # Direct-indexed levels are the coarsest ones (resolutions grow): each group of levels combines its
  # terms one way, with no per-corner select between the two (which cost as much as the gather).
  num_dense = sum(layout.dense)
  groups = [(0, num_dense, True), (num_dense, num_levels, False)]
  index = jnp.concatenate([_corner_index(cell[:, a:b], layout.resolutions[a:b], direct, layout.sizes)
                           for a, b, direct in groups if b > a], axis=1)
  weights = weight.reshape(x.shape[0], num_levels, 2 ** d)
  rows = index.astype(jnp.int32) + jnp.asarray(layout.offsets, jnp.int32)[None, :, None]
  return rows, weights


def _corner_index(cell, resolutions, direct, sizes):
  """Level-local rows of the 2^d corners of each input's cell, for a group of levels all indexed the
  same way: uint32 [n, G, 2^d] from cell uint32 [n, G, d] (resolutions: the group's G N_l)."""
  n, levels, d = cell.shape
  index = None
  for k in range(d):
    coords = cell[..., k, None] + jnp.arange(2, dtype=jnp.uint32)  # [n, G, 2]
    if direct:  # x_0 + (N + 1) x_1 + (N + 1)^2 x_2, exact in uint32 for levels that fit a table
      stride = jnp.asarray([(r + 1) ** k for r in resolutions], jnp.uint32)[None, :, None]
      term = coords * stride
    else:  # x_k * prime_k, XORed (wrapping mod 2^32, as in the paper)
      term = coords * jnp.uint32(PRIMES[k])
    term = term.reshape((n, levels) + (1,) * (d - 1 - k) + (2,) + (1,) * k)
    if index is None:
      index = term
    elif direct:
      index = index + term
    else:
      index = index ^ term
  # Corner c = (b_{d-1} ... b_0) in binary, bit k its offset along axis k: axis k is the (d-1-k)-th
  # trailing axis above, so a C-order flatten puts corner c at position c.
  index = index.reshape(n, levels, 2 ** d)
  # Hashed levels have exactly 2^table_log2 rows: the modulo is a mask.
  return index if direct else index & jnp.uint32(max(sizes) - 1)


def _interpolate(table, rows, weights):
  """sum over corners of weights * table[rows]: float32 [n, L, F]."""
  return jnp.einsum('nlc,nlcf->nlf', weights, table[rows])


def _corner_sum(table, rows, weights):
  """_interpolate's sums, corner by corner: float32 [n, L, F]. On a CPU XLA runs the einsum as a
  batched [1, 2^d] x [2^d, F] product per point and level, 3 times slower than 2^d gathers multiplied
  and added in one loop (benchmarks/run.py eval_real_cpu); differentiated, the einsum trains faster.
  The same sums in another order (float32 rounding)."""
  out = weights[..., 0, None] * table[rows[..., 0]]
  for c in range(1, rows.shape[-1]):
    out = out + weights[..., c, None] * table[rows[..., c]]
  return out


@jax.custom_vjp
def interpolate_custom(table, rows, weights):
  """_interpolate with a hand-written backward pass: one scatter-add of weights x cotangent into the
  table, and no gradient for the rows or weights (the inputs' positions are not trained); not
  differentiated, the corner sum."""
  return _corner_sum(table, rows, weights)


def _interpolate_fwd(table, rows, weights):
  return _interpolate(table, rows, weights), (rows, weights, table.shape)


def _interpolate_bwd(residuals, g):
  rows, weights, shape = residuals
  contributions = weights[..., None] * g[:, :, None, :]  # [n, L, 2^d, F]
  grad = jnp.zeros(shape, g.dtype).at[rows.reshape(-1)].add(contributions.reshape(-1, shape[-1]))
  return grad, None, None


interpolate_custom.defvjp(_interpolate_fwd, _interpolate_bwd)


def materialized(x):
  """x (float32 [n, d]) as an array in memory, not an expression: x @ I, exact (each entry is x times
  1 plus zeros), and a fusion boundary.

  Without it, XLA on a CPU fuses everything that made the points (origin + t * direction, the
  contraction, the box) into the gather of the hash table's rows, and recomputes it for every gathered
  element, 8 corners x levels x features of them per point, and once more for the weights. Training
  escapes that (the backward pass needs the rows, so they are kept); a forward pass alone (evaluation,
  rendering, the viewer) did not: configs/colmap_fast_cpu.py rendered 7,200 rays/s, 25,000 with this
  and 42,000 with the corner sum too (encode_fast; benchmarks/run.py eval_real_cpu).
  jax.lax.optimization_barrier would say it better, but XLA's CPU pipeline drops barriers before fusion.
  """
  return jnp.matmul(x, jnp.eye(x.shape[-1], dtype=x.dtype), precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def encode_fast(x, table, layout):
  """hash_encode's features, by the path that is fastest for each use: float32 [n, L, F].

  Not differentiated (evaluation, rendering, the viewer): x materialized and the corners summed one
  by one, 5x faster on a CPU (benchmarks/run.py eval_real_cpu). Differentiated (training): the
  earlier path exactly, the einsum and autodiff's backward pass, so a training computes bit for bit
  what it did before the fast forward pass existed. x gets no gradient (as hash_encode's
  position_gradient=False says).
  """
  rows, weights = corner_indices_and_weights(materialized(x), layout)
  return _corner_sum(table, rows, weights)


def _encode_fast_fwd(x, table, layout):
  rows, weights = corner_indices_and_weights(x, layout)
  features, backward = jax.vjp(lambda t: _interpolate(t, rows, weights), table)
  return features, (backward, x)


def _encode_fast_bwd(layout, residuals, g):
  del layout
  backward, x = residuals
  return jnp.zeros_like(x), backward(g)[0]


encode_fast.defvjp(_encode_fast_fwd, _encode_fast_bwd)


def hash_encode(x, table, layout, *, custom_vjp=False, position_gradient=False, fast_forward=True):
  """The multiresolution hash encoding of points in the unit cube (or square).

  x: float32 [n, d] in [0, 1]; table: float32 [layout.total, F]
  returns float32 [n, L * F], level-major (level 0's F features first).
  custom_vjp: the hand-written backward pass (interpolate_custom) instead of autodiff's;
  benchmarks/run.py hash_encoding times both.
  position_gradient: the features' gradient with respect to x too (through the interpolation weights),
  which an SDF field's analytic normal needs; otherwise x gets none (a density field's points are
  not trained, and the weights' backward pass would cost as much as the table's). It takes autodiff's
  backward pass whatever custom_vjp says: the hand-written one has no gradient for x.
  fast_forward: encode_fast, whose forward pass alone (evaluation) is 5x faster on a CPU and whose
  training is the earlier path's; False, the earlier path everywhere, only to measure what it buys
  (benchmarks/run.py eval_real_cpu).
  """
  if fast_forward and not (custom_vjp or position_gradient):
    return encode_fast(x, table, layout).reshape(x.shape[0], -1)
  rows, weights = corner_indices_and_weights(x, layout)
  if position_gradient:  # an SDF's eikonal loss differentiates it twice: plain autodiff, no custom rule
    features = _interpolate(table, rows, weights)
  else:
    weights = jax.lax.stop_gradient(weights)
    features = (interpolate_custom if custom_vjp else _interpolate)(table, rows, weights)
  return features.reshape(x.shape[0], -1)


class HashEncoding(nn.Module):
  """hash_encode as a field's input module, with its table as the parameter 'table'.

  box: (lo, hi) of the cube (or square) [lo, hi]^d the grid covers; inputs are mapped to [0, 1]^d
  and clipped. __call__: x float32 [..., d] -> float32 [..., num_levels * features].
  """
  num_levels: int = 16
  features: int = 2
  table_log2: int = 19
  coarsest: int = 16
  finest: int = 2048
  box: tuple = (0.0, 1.0)
  custom_vjp: bool = False
  position_gradient: bool = False  # hash_encode's: an SDF field with analytic normals sets it

  @nn.compact
  def __call__(self, x):
    layout = grid_layout(x.shape[-1], self.num_levels, self.table_log2, self.coarsest, self.finest)
    # The paper's initialisation: small enough that the MLP first sees ~0 features everywhere.
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1e-4, 1e-4)
    table = self.param('table', init, (layout.total, self.features))
    lo, hi = self.box
    flat = ((x - lo) / (hi - lo)).reshape(-1, x.shape[-1])
    out = hash_encode(flat, table, layout, custom_vjp=self.custom_vjp, position_gradient=self.position_gradient)
    return out.reshape(*x.shape[:-1], self.num_levels * self.features)


def build(model_config, role):
  """model.hash_* keys; the grid covers model.box on every axis (positions; image fitting's (u, v)).

  A learned camera model (model.camera other than 'fixed': pose refinement) moves the rays, so the
  features' gradient with respect to the points is needed: without it the poses would learn only from
  the colour's view dependence, which turns them and never moves them (position_gradient; it takes
  autodiff's backward pass whatever model.hash_custom_vjp says, as hash_encode explains).
  """
  del role
  m = model_config
  return HashEncoding(num_levels=m.hash_levels, features=m.hash_features, table_log2=m.hash_table_log2,
                      coarsest=m.hash_coarsest, finest=m.hash_finest, box=tuple(m.box),
                      custom_vjp=m.hash_custom_vjp, position_gradient=m.get('camera', 'fixed') != 'fixed')
