"""Volume rendering in two steps (pure, no flax): weights from densities or from per-sample alphas,
then compositing. NeRF's density fields take the first path, SDF methods (NeuS) the second; both end
in the same `composite`."""

import jax
import jax.numpy as jnp

from nerf_jax.types import RenderResult


def interval_edges(z_vals, far):
  """The intervals samples stand for: sample i for [z_i, z_{i+1}), the last one for [z_last, far].

  z_vals: float32 [..., S] sorted, < far; far: a float or float32 [..., 1] per ray
  returns float32 [..., S + 1]
  """
  # (NeRF's code made the last interval 1e10 long, which makes every ray opaque unless its last
  # density is exactly 0: fine for a ReLU density, but a softplus one could then never show the white
  # background.)
  return jnp.concatenate([z_vals, jnp.broadcast_to(jnp.asarray(far, z_vals.dtype), z_vals[..., :1].shape)],
                         axis=-1)


def weights_from_density(sigma, z_vals, directions, *, far):
  """Each sample's share of the ray's colour from densities.

  sigma: float32 [..., S] >= 0; z_vals: float32 [..., S] sorted, < far; directions: float32 [..., 3],
  the un-normalised ray directions the z_vals are measured along; far: where the last sample's
  interval ends (a float, or float32 [..., 1] per ray)
  returns (weights float32 [..., S], edges float32 [..., S + 1])
  """
  intervals = jnp.diff(z_vals, axis=-1, append=jnp.full_like(z_vals[..., :1], far))
  # Opacity needs true distances: a z_val step is |direction| long in world units.
  deltas = intervals * jnp.linalg.norm(directions, axis=-1, keepdims=True)
  optical = sigma * deltas
  alpha = 1.0 - jnp.exp(-optical)
  # Transmittance from an exclusive cumulative sum of optical depth: exact and never 0/0, unlike
  # a cumulative product of (1 - alpha).
  accumulated = jnp.concatenate(
      [jnp.zeros_like(optical[..., :1]), jnp.cumsum(optical[..., :-1], axis=-1)], axis=-1)
  return alpha * jnp.exp(-accumulated), interval_edges(z_vals, far)


def weights_from_alpha(alpha):
  """Each sample's share of the ray's colour from per-sample opacities (an SDF method's alphas).

  alpha: float32 [..., S] in [0, 1] -> weights float32 [..., S]: alpha_i * prod_{j < i} (1 - alpha_j)
  """
  # An exclusive cumulative product: the transmittance before each sample. (A log-space sum would be
  # -inf at alpha = 1 and give NaN gradients there; the product is exact and its gradient finite.)
  transmittance = jnp.cumprod(
      jnp.concatenate([jnp.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1]], axis=-1), axis=-1)
  return alpha * transmittance


def composite(weights, rgb, z_vals, *, white_bkgd, background=None, edges=None, extras=None):
  """The ray's colour, opacity and depth from sample weights.

  weights: float32 [..., S]; rgb: float32 [..., S, 3]; z_vals: float32 [..., S]; background: float32
  [..., 3], the colour behind each ray (training on random backgrounds), or None: white where
  white_bkgd, else black; edges: float32 [..., S + 1] the samples' intervals (interval_edges), or None;
  extras: {name: array} carried into the result for loss terms
  returns RenderResult with rgb [..., 3], depth / acc / disp [...], weights [..., S]
  """
  acc = jnp.sum(weights, axis=-1)
  far = z_vals[..., -1] if edges is None else edges[..., -1]
  colour, depth, disp = _finish(jnp.sum(weights[..., None] * rgb, axis=-2), acc,
                                jnp.sum(weights * z_vals, axis=-1), far, white_bkgd, background)
  return RenderResult(rgb=colour, depth=depth, acc=acc, disp=disp, weights=weights, z_vals=z_vals,
                      edges=edges, extras={} if extras is None else dict(extras))


def _finish(colour, acc, weighted_z, far, white_bkgd, background):
  """The ray's colour over its background, its depth and disparity, from its weighted sums.

  colour: float32 [..., 3] sum(w rgb); acc, weighted_z, far: float32 [...] sum(w), sum(w z), the far end
  returns (colour float32 [..., 3], depth float32 [...], disp float32 [...])
  """
  if background is not None:
    colour = colour + background * (1.0 - acc[..., None])
  elif white_bkgd:
    colour = colour + (1.0 - acc[..., None])
  disp = acc / jnp.maximum(weighted_z, 1e-10)  # = 1 / (weighted_z / acc), 0 for a ray that hits nothing
  depth = jnp.where(acc > 0, weighted_z / jnp.maximum(acc, 1e-10), far)
  return colour, depth, disp


def weights_from_density_packed(sigma, deltas, ray_ids, before=None):
  """weights_from_density for samples packed ray after ray (nerfacc's layout): only the samples a
  sampler queried, not a dense [rays, S] block with zeros where it skipped.

  sigma: float32 [N] >= 0; deltas: float32 [N] each sample's interval in world units (or 1.0 where
  sigma is already each sample's optical depth over its interval, -log(1 - alpha)); ray_ids: int32
  [N] each sample's ray, non-decreasing (a ray's samples consecutive, in depth order); before:
  float32 [N] or None, the optical depth in front of the first sample of each sample's ray (a
  sampler's earlier stage of samples, all nearer), 0 where None
  returns weights float32 [N]
  """
  optical = sigma * deltas
  starts = jnp.concatenate([jnp.ones((1,), bool), ray_ids[1:] != ray_ids[:-1]])

  def add_within_ray(a, b):
    (sum_a, start_a), (sum_b, start_b) = a, b
    return jnp.where(start_b, sum_b, sum_a + sum_b), start_a | start_b

  # A segmented cumulative sum in log(N) passes, then shifted one sample along its ray: exclusive
  # without subtracting (inclusive - optical is inf - inf where a density overflowed).
  inclusive, _ = jax.lax.associative_scan(add_within_ray, (optical, starts))
  exclusive = jnp.where(starts, 0.0, jnp.concatenate([jnp.zeros_like(optical[:1]), inclusive[:-1]]))
  if before is not None:
    exclusive = before + exclusive
  return (1.0 - jnp.exp(-optical)) * jnp.exp(-exclusive)


def composite_packed(weights, rgb, z_vals, ray_ids, *, far, white_bkgd, background=None):
  """composite for packed samples: each ray's colour, opacity and depth from the samples it has.

  weights, z_vals: float32 [N]; rgb: float32 [N, 3]; ray_ids: int32 [N] in [0, R], R for a padding
  slot (left out); far: float32 [R] where depth goes for a ray that hits nothing; background as in
  composite ([R, 3])
  returns (rgb float32 [R, 3], depth, acc, disp float32 [R])
  """
  num_rays = far.shape[0]
  total = lambda x: jax.ops.segment_sum(x, ray_ids, num_segments=num_rays)
  acc = total(weights)
  colour, depth, disp = _finish(total(weights[:, None] * rgb), acc, total(weights * z_vals), far, white_bkgd,
                                background)
  return colour, depth, acc, disp


def volume_render(rgb, sigma, z_vals, directions, *, far, white_bkgd, background=None, extras=None):
  """weights_from_density then composite: NeRF's volume rendering of densities.

  rgb: float32 [..., S, 3]; sigma: float32 [..., S] >= 0; z_vals: float32 [..., S] sorted, < far;
  directions: float32 [..., 3]; far: a float or float32 [..., 1]; background and extras as in composite
  returns RenderResult with rgb [..., 3], depth / acc / disp [...], weights [..., S], edges [..., S + 1]
  """
  weights, edges = weights_from_density(sigma, z_vals, directions, far=far)
  return composite(weights, rgb, z_vals, white_bkgd=white_bkgd, background=background, edges=edges,
                   extras=extras)


def neus_alpha(sdf, slope, deltas, inv_s):
  """NeuS's per-sample opacity from a signed distance: the drop of the logistic CDF Phi_s over the
  sample's interval, relative to its value at the interval's start (Wang et al. 2021, eq. 13).

  sdf: float32 [...] at the samples (midpoints of their intervals; > 0 outside the surface);
  slope: float32 [...] the SDF's derivative along the ray, dot(viewdir, gradient); deltas: float32
  [...] the intervals' lengths in world units; inv_s: float32 [...] or a float, the logistic's
  sharpness (1 / standard deviation, learned)
  returns alpha float32 [...] in [0, 1]; weights_from_alpha composites them.
  """
  # The SDF at the interval's ends from the midpoint and the slope. Only a decreasing SDF (the ray
  # entering a surface, slope < 0) makes opacity: NeuS's cosine with its annealing finished, which
  # keeps the back of a surface (where the ray leaves it) from occluding.
  rate = -jax.nn.relu(-slope)
  prev_cdf = jax.nn.sigmoid((sdf - 0.5 * rate * deltas) * inv_s)
  next_cdf = jax.nn.sigmoid((sdf + 0.5 * rate * deltas) * inv_s)
  # The 1e-5s are NeuS's: defined where both CDFs are 0 (deep inside), without a 0/0.
  return jnp.clip((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5), 0.0, 1.0)
