"""An occupancy grid over the scene's box and ray marching through it (pure; instant-NGP's scheme).

The grid holds, per cell of a res^3 grid over the cube [lo, hi]^3, an exponential moving average of
the field's density (-1: never looked at) and a bit, `bits`, saying whether the cell may hold
anything: its opacity over one marching step, density * step_size, above min(threshold, the mean over
the cells seen). Rays march at a fixed step through the box; only the steps whose cell is occupied
are given to the field, at most a fixed number per batch (static shapes, so one compilation), the
first ones along each ray first; rendering then composites the fixed-step samples as usual, with
density 0 at every step that was skipped (in training, only the queried ones, packed: the same sums).
"""

import jax
import jax.numpy as jnp

from nerf_jax import sampling


def cell_index(points, lo, hi, res):
  """Flat cell index x + res * y + res^2 * z of each point, and whether the point is inside the box.

  points: float32 [..., 3] -> (int32 [...] in [0, res^3), bool [...])
  """
  scaled = (points - lo) / (hi - lo) * res
  inside = jnp.all((scaled >= 0) & (scaled < res), axis=-1)
  cell = jnp.clip(jnp.floor(scaled), 0, res - 1).astype(jnp.int32)
  return cell[..., 0] + res * (cell[..., 1] + res * cell[..., 2]), inside


def cell_centres(indices, res, lo, hi, jitter=None):
  """Points in the cells `indices` (int32 [M]): their centres, or where `jitter` (float32 [M, 3] in
  [0, 1)) puts them in the cell. Returns float32 [M, 3]."""
  xyz = jnp.stack([indices % res, (indices // res) % res, indices // (res * res)], axis=-1)
  offset = 0.5 if jitter is None else jitter
  return lo + (xyz.astype(jnp.float32) + offset) * ((hi - lo) / res)


def occupied_bits(density, step_size, threshold):
  """The grid's bits from its densities: float32 [res^3], 1.0 where a cell may hold something.

  A cell never looked at (density < 0) counts as occupied, so a new grid samples everywhere.
  density: float32 [res^3]; step_size: the marching step (world units); threshold: opacity over a step.
  """
  seen = density >= 0
  opacity = jnp.where(seen, density, 0.0) * step_size
  mean = jnp.sum(opacity) / jnp.maximum(jnp.sum(seen), 1)
  return ((~seen) | (opacity > jnp.minimum(threshold, mean))).astype(jnp.float32)


def update_density(density, bits, key, step, density_fn, *, res, lo, hi, warmup_steps, decay=0.95,
                   chunk=65536):
  """One update of the grid's densities: new = max(decay * old, density at a random point of the cell).

  During warm-up (step < warmup_steps) every cell is looked at; then a quarter of the cells drawn
  uniformly plus a quarter drawn from the occupied ones (instant-NGP's schedule), so empty cells are
  still revisited and occupied ones kept fresh. Only the cells looked at decay (as nerfacc and
  torch-ngp do; instant-NGP decays every cell each update). density_fn: float32 [n, 3] -> float32 [n] (jittable).
  density, bits: float32 [res^3]; returns the new density float32 [res^3].
  """
  cells = res ** 3
  cell_key, occupied_key, jitter_key = jax.random.split(key, 3)

  def densities_at(indices):
    jitter = jax.random.uniform(jitter_key, (indices.shape[0], 3))
    points = cell_centres(indices, res, lo, hi, jitter)
    pad = -points.shape[0] % chunk
    points = jnp.concatenate([points, jnp.zeros((pad, 3), points.dtype)]).reshape(-1, chunk, 3)
    return jax.lax.map(density_fn, points).reshape(-1)[:indices.shape[0]]

  def blend(indices):
    fresh = densities_at(indices)
    old = density[indices]
    decayed = jnp.where(old < 0, 0.0, old * decay)
    # Duplicate indices write the same decayed value, then the largest fresh one wins.
    return density.at[indices].set(decayed).at[indices].max(fresh)

  def warmup():
    return blend(jnp.arange(cells, dtype=jnp.int32))

  def later():
    quarter = max(cells // 4, 1)
    uniform = jax.random.randint(cell_key, (quarter,), 0, cells, jnp.int32)
    # The small floor makes the draw well defined when no cell is occupied.
    weights = bits + 1e-12
    from_occupied = jax.random.choice(occupied_key, cells, (quarter,), p=weights / jnp.sum(weights))
    return blend(jnp.concatenate([uniform, from_occupied.astype(jnp.int32)]))

  return jax.lax.cond(step < warmup_steps, warmup, later)


def ray_box(origins, directions, lo, hi):
  """Where rays enter and leave the cube [lo, hi]^3, in units of their (un-normalised) directions.

  origins, directions: float32 [R, 3] -> t_enter, t_exit float32 [R] (t_enter > t_exit: a miss)
  """
  safe = jnp.where(jnp.abs(directions) < 1e-9, 1e-9, directions)
  t0, t1 = (lo - origins) / safe, (hi - origins) / safe
  return jnp.max(jnp.minimum(t0, t1), axis=-1), jnp.min(jnp.maximum(t0, t1), axis=-1)


def march(origins, directions, offsets, *, near, far, lo, hi, step_size, max_steps):
  """Fixed-step sample depths through the box, between near and far.

  origins, directions: float32 [R, 3]; offsets: float32 [R] in [0, 1), each ray's jitter of its first
  step (0.5: mid-step); step_size: world units between samples; max_steps: samples per ray (at least
  the box's diagonal / step_size to cross it).
  returns z_vals float32 [R, max_steps] (depths along `directions`, a constant step dt per ray),
  dt float32 [R] (that step), valid bool [R, max_steps] (inside the box and in [near, far]).
  """
  dt = step_size / jnp.linalg.norm(directions, axis=-1)
  t_enter, t_exit = ray_box(origins, directions, lo, hi)
  start = jnp.maximum(near, t_enter)
  end = jnp.minimum(far, t_exit)
  steps = jnp.arange(max_steps, dtype=jnp.float32)
  z_vals = start[:, None] + (steps[None, :] + offsets[:, None]) * dt[:, None]
  return z_vals, dt, z_vals < end[:, None]


def march_contracted(offsets, *, near, far, split, max_steps):
  """Sample depths for contracted space: max_steps steps evenly in nerfacto's piecewise spacing
  (sampling.spacing_to_distance: linear from near to split, then linear in disparity out to far), so
  the steps grow with distance as the contracted cells do.

  offsets: float32 [R] in [0, 1), each ray's jitter of its first step (0.5: mid-step)
  returns z_vals float32 [R, max_steps] (each step's start), dt float32 [R, max_steps] (its length, in
  units of the ray's direction; the last one may be cut at far)
  """
  steps = jnp.arange(max_steps + 1, dtype=jnp.float32)
  s = jnp.minimum((steps[None, :] + offsets[:, None]) / max_steps, 1.0)
  edges = sampling.spacing_to_distance(s, near, far, split)
  return edges[:, :-1], jnp.diff(edges, axis=-1)


def contracted_step_sizes(res, lo, hi, *, near, far, radius, max_steps):
  """Each cell's marching step in world units (float32 [res^3]) for march_contracted's steps, for
  occupied_bits. A ray's step depends on its distance from its camera, not on the cell: the largest a
  ray may take there is used, so no cell is called empty on an underestimated step (its opacity over
  a step is density * step). The cameras lie within `radius` of the origin (the loaders' normalisation),
  so a cell at distance d from the origin is at most d + radius from a camera: the disparity part's step
  there, 2 (d + radius)^2 (1 / radius - 1 / far) / max_steps, or the linear part's, 2 (radius - near) /
  max_steps, whichever is larger. radius: the contraction's, which is also the spacing's split."""
  centres = cell_centres(jnp.arange(res ** 3), res, lo, hi)
  distance = jnp.linalg.norm(sampling.uncontract(centres, radius), axis=-1) + radius
  linear = 2.0 * (radius - near) / max_steps
  return jnp.maximum(2.0 * distance ** 2 * (1.0 / radius - 1.0 / far) / max_steps, linear)


def select_samples(mask, budget):
  """At most `budget` of the candidate samples `mask`, the first ones along every ray first.

  The cap c is the largest number such that the first c candidates of every ray fit in the budget;
  those are taken, and what budget is left goes to the (c + 1)-th candidates of the rays in order. A
  ray with more candidates than that stops early (the static shape's form of early termination).
  mask: bool [R, K] -> indices int32 [budget] into the flattened [R * K] samples, R * K for an
  unused slot (callers pad their arrays with one extra row for it).
  """
  rays, steps = mask.shape
  counts = jnp.sum(mask, axis=1, dtype=jnp.int32)
  histogram = jnp.zeros(steps + 1, jnp.int32).at[counts].add(1)
  longer = rays - jnp.cumsum(histogram)[:-1]  # [K]: rays with more than k candidates
  cap = jnp.sum(jnp.cumsum(longer) <= budget)
  rank = jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1
  pad = rays * steps
  first = jnp.nonzero((mask & (rank < cap)).reshape(-1), size=budget, fill_value=pad)[0]
  taken = jnp.sum(mask & (rank < cap))
  # The leftover slots, filled with each ray's next candidate in ray order.
  next_ones = jnp.nonzero((mask & (rank == cap)).reshape(-1), size=budget, fill_value=pad)[0]
  slot = jnp.arange(budget)
  chosen = jnp.where(slot < taken, first, next_ones[jnp.clip(slot - taken, 0, budget - 1)])
  return chosen.astype(jnp.int32)


def select_rays(mask, budget):
  """Every candidate of as many whole rays as fit in `budget`, rays in order.

  instant-NGP's fixed number of samples per step: while the grid still marks most cells occupied a
  step trains few rays completely, later many. mask: bool [R, K] -> (indices int32 [budget] into the
  flattened [R * K] samples, R * K for an unused slot; fits bool [R], the rays all of whose
  candidates were taken).
  """
  rays, steps = mask.shape
  counts = jnp.sum(mask, axis=1, dtype=jnp.int32)
  fits = jnp.cumsum(counts) <= budget
  keep = mask & fits[:, None]
  indices = jnp.nonzero(keep.reshape(-1), size=budget, fill_value=rays * steps)[0]
  return indices.astype(jnp.int32), fits
