"""Frequency (positional) encoding: lifts low-dimensional coordinates so an MLP can fit high frequencies."""

import jax.numpy as jnp
import numpy as np

# pi in three parts for the sine's range reduction (Cody and Waite): the first two have few enough bits
# (8 and 10) that k * part is exact for |k| < 2^14, the third carries the rest of float32's pi.
_PI_A = np.float32(3.140625)
_PI_B = np.float32(0.0009670257568359375)
_PI_C = np.float32(np.pi - 3.140625 - 0.0009670257568359375)
# Taylor coefficients of sin(r) / r - 1 in r^2 (up to r^11: under 6e-8 off on [-pi/2, pi/2]).
_SIN_TERMS = tuple(np.float32(c) for c in (-2.5052108e-08, 2.7557319e-06, -1.9841270e-04, 8.3333333e-03,
                                           -1.6666667e-01))


def sine(x):
  """sin(x) within 2e-7 for |x| < 10^4, from multiplies, adds and one rounding; NaN for NaN or inf.

  x: float32 [...] -> float32 [...]. XLA's CPU sin costs ~8 ns an element (its general range
  reduction), eight times this; at NeRF's 60 sines a sample it was a tenth of a small model's training
  step. 10^4 is a point 20 units from the origin at NeRF's top frequency 2^9. Beyond, the result stays
  in [-1, 1] but loses accuracy (6e-6 at 5 x 10^4, where float32's own spacing is 4e-3).
  """
  k = jnp.round(x * np.float32(1.0 / np.pi))
  # x - k pi: in [-pi/2, pi/2] but for a k rounded one off near half-integers of x / pi (by up to
  # 1e-3 at 10^4); the clip only bounds what huge or non-finite arguments give (the series is still
  # accurate at 1.6, and stays under 1 there).
  r = ((x - k * _PI_A) - k * _PI_B) - k * _PI_C
  r = jnp.clip(r, -1.6, 1.6)
  r2 = r * r
  p = _SIN_TERMS[0]
  for c in _SIN_TERMS[1:]:
    p = p * r2 + c
  s = r + r * r2 * p
  # sin(r + k pi) = (-1)^k sin(r)
  return jnp.where(jnp.remainder(k, 2.0) != 0, -s, s)


def frequency_encoding(x, num_freqs, *, include_input=True):
  """NeRF's encoding gamma(x) with frequencies 2^0 .. 2^(num_freqs - 1) (no factor pi, as in NeRF's code).

  x: float32 [..., d]
  returns float32 [..., d * (include_input + 2 * num_freqs)], laid out as
    [x, sin(2^0 x), ..., sin(2^(L-1) x), cos(2^0 x), ..., cos(2^(L-1) x)], each block d wide.
  """
  scales = 2.0 ** jnp.arange(num_freqs, dtype=x.dtype)
  scaled = (x[..., None, :] * scales[:, None]).reshape(*x.shape[:-1], num_freqs * x.shape[-1])
  # One sine over [xb, xb + pi/2] gives the sines and cosines together (cos t = sin(t + pi/2)).
  features = sine(jnp.concatenate([scaled, scaled + 0.5 * jnp.pi], axis=-1))
  return jnp.concatenate([x, features], axis=-1) if include_input else features


def encoded_size(dims, num_freqs, *, include_input=True):
  """Width of frequency_encoding's output for `dims` input coordinates."""
  return dims * (int(include_input) + 2 * num_freqs)
