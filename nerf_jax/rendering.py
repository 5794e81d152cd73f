"""Volume rendering in two steps (pure, no flax): weights from densities or from per-sample alphas,
then compositing. NeRF's density fields take the first path, SDF methods (NeuS) the second; both end
in the same `composite`."""

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
  weighted_z = jnp.sum(weights * z_vals, axis=-1)
  colour = jnp.sum(weights[..., None] * rgb, axis=-2)
  if background is not None:
    colour = colour + background * (1.0 - acc[..., None])
  elif white_bkgd:
    colour = colour + (1.0 - acc[..., None])
  disp = acc / jnp.maximum(weighted_z, 1e-10)  # = 1 / (weighted_z / acc), 0 for a ray that hits nothing
  far = z_vals[..., -1] if edges is None else edges[..., -1]
  depth = jnp.where(acc > 0, weighted_z / jnp.maximum(acc, 1e-10), far)
  return RenderResult(rgb=colour, depth=depth, acc=acc, disp=disp, weights=weights, z_vals=z_vals,
                      edges=edges, extras={} if extras is None else dict(extras))


def volume_render(rgb, sigma, z_vals, directions, *, far, white_bkgd, background=None, extras=None):
  """weights_from_density then composite: NeRF's volume rendering of densities.

  rgb: float32 [..., S, 3]; sigma: float32 [..., S] >= 0; z_vals: float32 [..., S] sorted, < far;
  directions: float32 [..., 3]; far: a float or float32 [..., 1]; background and extras as in composite
  returns RenderResult with rgb [..., 3], depth / acc / disp [...], weights [..., S], edges [..., S + 1]
  """
  weights, edges = weights_from_density(sigma, z_vals, directions, far=far)
  return composite(weights, rgb, z_vals, white_bkgd=white_bkgd, background=background, edges=edges,
                   extras=extras)
