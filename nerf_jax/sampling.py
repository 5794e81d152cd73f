"""Where along each ray the MLP is queried (pure). key=None means deterministic (evaluation)."""

import jax
import jax.numpy as jnp


def stratified_samples(key, near, far, num_samples, batch_shape, *, lindisp=False):
  """Sample depths between near and far: bin centres, or one uniform draw per bin when key is given.

  lindisp: bins of equal width in inverse depth (disparity) rather than in depth, so near depths get
  more samples than far ones (NeRF's choice for real scenes used without NDC); needs near > 0.
  returns z_vals: float32 [*batch_shape, num_samples], sorted along the last axis.
  """
  if lindisp:
    t = jnp.linspace(0.0, 1.0, num_samples + 1, dtype=jnp.float32)
    edges = 1.0 / ((1.0 - t) / near + t / far)
  else:
    edges = jnp.linspace(near, far, num_samples + 1, dtype=jnp.float32)
  lower, upper = edges[:-1], edges[1:]
  shape = (*batch_shape, num_samples)
  if key is None:
    return jnp.broadcast_to(0.5 * (lower + upper), shape)
  return lower + (upper - lower) * jax.random.uniform(key, shape)


def sample_pdf(key, bins, weights, num_samples):
  """Inverse-CDF samples from the piecewise-constant density given by `weights` over `bins`.

  bins: float32 [..., M + 1] sorted bin edges; weights: float32 [..., M] (>= 0, need not sum to 1)
  returns float32 [..., num_samples], sorted; no gradient flows into bins or weights.
  key=None takes the quantiles (i + 0.5) / num_samples; a key jitters each within its stratum.
  """
  # A small floor keeps the CDF strictly increasing, so an all-zero ray samples uniformly, not NaN.
  weights = weights + 1e-5
  pdf = weights / jnp.sum(weights, axis=-1, keepdims=True)
  cdf = jnp.concatenate([jnp.zeros_like(pdf[..., :1]), jnp.cumsum(pdf, axis=-1)], axis=-1)
  cdf = jnp.minimum(cdf, 1.0)
  shape = (*cdf.shape[:-1], num_samples)
  offset = 0.5 if key is None else jax.random.uniform(key, shape)
  u = (jnp.arange(num_samples, dtype=jnp.float32) + offset) / num_samples
  u = jnp.broadcast_to(u, shape)
  # index of the bin holding u: the last edge with cdf <= u, clipped to a real bin
  search = jnp.vectorize(lambda c, v: jnp.searchsorted(c, v, side='right', method='compare_all'),
                         signature='(m),(n)->(n)')
  idx = jnp.clip(search(cdf, u) - 1, 0, weights.shape[-1] - 1)
  cdf_lo = jnp.take_along_axis(cdf, idx, -1)
  cdf_hi = jnp.take_along_axis(cdf, idx + 1, -1)
  bin_lo = jnp.take_along_axis(bins, idx, -1)
  bin_hi = jnp.take_along_axis(bins, idx + 1, -1)
  t = jnp.clip((u - cdf_lo) / jnp.maximum(cdf_hi - cdf_lo, 1e-10), 0.0, 1.0)
  return jax.lax.stop_gradient(bin_lo + t * (bin_hi - bin_lo))


def hierarchical_samples(key, z_vals, weights, num_samples):
  """Fine samples drawn from the coarse weights, merged with the coarse ones and sorted.

  z_vals: float32 [..., S] coarse samples; weights: float32 [..., S] their rendering weights
  returns float32 [..., S + num_samples]
  """
  mids = 0.5 * (z_vals[..., 1:] + z_vals[..., :-1])
  # NeRF's choice: bins between coarse midpoints, dropping the first and last weight.
  fine = sample_pdf(key, mids, weights[..., 1:-1], num_samples)
  return jnp.sort(jnp.concatenate([z_vals, fine], axis=-1), axis=-1)


def points_along(rays, z_vals):
  """The samples' points, origin + z * direction.

  rays: Rays [...] (origins, directions float32 [..., 3]); z_vals: float32 [..., S]
  returns float32 [..., S, 3]
  """
  return rays.origins[..., None, :] + z_vals[..., :, None] * rays.directions[..., None, :]


def contract(points, radius):
  """mip-NeRF 360's scene contraction in its L-infinity form (nerfstudio's for hash grids): the cube
  |x|_inf <= radius stays (scaled to the unit cube), everything outside is squeezed into the shell up to
  |y|_inf = 2, infinity onto its surface: y = (2 - 1 / |u|) u / |u| for u = x / radius, |u|_inf > 1.

  points: float32 [..., 3]; radius: float -> float32 [..., 3] in [-2, 2]^3
  """
  u = points / radius
  norm = jnp.max(jnp.abs(u), axis=-1, keepdims=True)
  safe = jnp.maximum(norm, 1.0)
  return jnp.where(norm <= 1.0, u, (2.0 - 1.0 / safe) * u / safe)


def uncontract(contracted, radius):
  """The inverse of `contract`: points float32 [..., 3] with |y|_inf < 2 -> float32 [..., 3] in the
  world (|y|_inf = 2 is infinity, so it is kept off: points there return as 1e6 * radius away)."""
  norm = jnp.max(jnp.abs(contracted), axis=-1, keepdims=True)
  outer = jnp.clip(norm, 1.0, 2.0 - 1e-6)
  # y = (2 - 1/n) u / n with n = |u|_inf, so |y|_inf = 2 - 1/n: n = 1 / (2 - |y|_inf), u = y n / (2 - 1/n).
  n = 1.0 / (2.0 - outer)
  return radius * jnp.where(norm <= 1.0, contracted, contracted * n / (2.0 - 1.0 / n))


def spacing_to_distance(s, near, far, split=None):
  """Distances along a ray from its normalised spacing s in [0, 1] (mip-NeRF 360's s-space, where
  proposal histograms are resampled and the distortion loss is measured).

  split=None: linear, t = near + s (far - near). split a distance (near < split < far): nerfacto's
  piecewise spacing, the first half of s linear from near to split, the second linear in 1 / t from
  split to far, so samples grow with distance past the region the cameras enclose.
  s: float32 [...]; near, far, split: floats -> float32 [...]
  """
  if split is None:
    return near + s * (far - near)
  inner = near + 2.0 * s * (split - near)
  outer = 1.0 / (1.0 / split + (2.0 * s - 1.0) * (1.0 / far - 1.0 / split))
  return jnp.where(s < 0.5, inner, outer)


def distance_to_spacing(t, near, far, split=None):
  """The inverse of spacing_to_distance: t float32 [...] in [near, far] -> s float32 [...] in [0, 1]."""
  if split is None:
    return (t - near) / (far - near)
  inner = 0.5 * (t - near) / (split - near)
  outer = 0.5 + 0.5 * (1.0 / jnp.maximum(t, 1e-10) - 1.0 / split) / (1.0 / far - 1.0 / split)
  return jnp.where(t < split, inner, outer)
