"""Frequency (positional) encoding: lifts low-dimensional coordinates so an MLP can fit high frequencies."""

import jax.numpy as jnp


def frequency_encoding(x, num_freqs, *, include_input=True):
  """NeRF's encoding gamma(x) with frequencies 2^0 .. 2^(num_freqs - 1) (no factor pi, as in NeRF's code).

  x: float32 [..., d]
  returns float32 [..., d * (include_input + 2 * num_freqs)], laid out as
    [x, sin(2^0 x), ..., sin(2^(L-1) x), cos(2^0 x), ..., cos(2^(L-1) x)], each block d wide.
  """
  scales = 2.0 ** jnp.arange(num_freqs, dtype=x.dtype)
  scaled = (x[..., None, :] * scales[:, None]).reshape(*x.shape[:-1], num_freqs * x.shape[-1])
  # One sin over [xb, xb + pi/2] gives the sines and cosines together (cos t = sin(t + pi/2)).
  features = jnp.sin(jnp.concatenate([scaled, scaled + 0.5 * jnp.pi], axis=-1))
  return jnp.concatenate([x, features], axis=-1) if include_input else features


def encoded_size(dims, num_freqs, *, include_input=True):
  """Width of frequency_encoding's output for `dims` input coordinates."""
  return dims * (int(include_input) + 2 * num_freqs)
