"""Volume rendering by alpha compositing (pure, no flax)."""

import jax.numpy as jnp

from nerf_jax.types import RenderResult


def volume_render(rgb, sigma, z_vals, directions, *, far, white_bkgd, background=None):
  """Composites samples front to back.

  rgb: float32 [..., S, 3]; sigma: float32 [..., S] >= 0; z_vals: float32 [..., S] sorted, < far;
  directions: float32 [..., 3], the un-normalised ray directions the z_vals are measured along
  far: where the last sample's interval ends (a float, or float32 [..., 1] per ray)
  background: float32 [..., 3], the colour behind each ray (training on random backgrounds), or
    None: white where white_bkgd, else black
  returns RenderResult with rgb [..., 3], depth / acc / disp [...], weights [..., S]
  """
  # Sample i stands for [z_i, z_{i+1}), the last one for [z_last, far]. (NeRF's code made the last
  # interval 1e10 long, which makes every ray opaque unless its last density is exactly 0: fine
  # for a ReLU density, but a softplus one could then never show the white background.)
  intervals = jnp.diff(z_vals, axis=-1, append=jnp.full_like(z_vals[..., :1], far))
  # Opacity needs true distances: a z_val step is |direction| long in world units.
  deltas = intervals * jnp.linalg.norm(directions, axis=-1, keepdims=True)
  optical = sigma * deltas
  alpha = 1.0 - jnp.exp(-optical)
  # Transmittance from an exclusive cumulative sum of optical depth: exact and never 0/0, unlike
  # a cumulative product of (1 - alpha).
  accumulated = jnp.concatenate(
      [jnp.zeros_like(optical[..., :1]), jnp.cumsum(optical[..., :-1], axis=-1)], axis=-1)
  weights = alpha * jnp.exp(-accumulated)
  acc = jnp.sum(weights, axis=-1)
  depth = jnp.sum(weights * z_vals, axis=-1)
  colour = jnp.sum(weights[..., None] * rgb, axis=-2)
  if background is not None:
    colour = colour + background * (1.0 - acc[..., None])
  elif white_bkgd:
    colour = colour + (1.0 - acc[..., None])
  disp = acc / jnp.maximum(depth, 1e-10)  # = 1 / (depth / acc), 0 for a ray that hits nothing
  return RenderResult(rgb=colour, depth=depth, acc=acc, disp=disp, weights=weights, z_vals=z_vals)
