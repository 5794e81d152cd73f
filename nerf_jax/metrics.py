"""Image quality: MSE, PSNR, SSIM. Pure jax.numpy."""

import jax
import jax.numpy as jnp


def mse(a, b, where=None):
  """Mean squared error over all elements. a, b: float32 [..., C] -> float32 [].

  where: bool [...] or None: only those rows count (all of them when None; 0 when none is set).
  """
  if where is None:
    return jnp.mean((a - b) ** 2)
  rows = jnp.sum((a - b) ** 2, axis=-1) * where
  return jnp.sum(rows) / jnp.maximum(jnp.sum(where) * a.shape[-1], 1)


def psnr_from_mse(value):
  """PSNR in dB for images in [0, 1]. float32 [...] -> float32 [...]."""
  return -10.0 * jnp.log10(value)


def psnr(a, b):
  """PSNR in dB of two images in [0, 1]. a, b: float32 [...] -> float32 []."""
  return psnr_from_mse(mse(a, b))


def _gaussian_blur(x, size, sigma):
  """Separable 'valid' Gaussian filter over axes 0 and 1. x: [H, W, C] -> [H - size + 1, W - size + 1, C]."""
  t = jnp.arange(size, dtype=x.dtype) - (size - 1) / 2
  kernel = jnp.exp(-0.5 * (t / sigma) ** 2)
  kernel = kernel / jnp.sum(kernel)
  conv = lambda v: jnp.convolve(v, kernel, mode='valid')
  x = jax.vmap(jax.vmap(conv, in_axes=1, out_axes=1), in_axes=2, out_axes=2)(x)  # along H
  return jax.vmap(jax.vmap(conv, in_axes=0, out_axes=0), in_axes=2, out_axes=2)(x)  # along W


def ssim(a, b, *, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
  """Structural similarity (Wang et al. 2004) with the usual 11x11, sigma 1.5 Gaussian window.

  a, b: float32 [H, W, C] -> float32 [] (mean over the valid window positions and channels).
  """
  if a.shape != b.shape or a.ndim != 3:
    raise ValueError(f'ssim needs two [H, W, C] images of one shape, got {a.shape} and {b.shape}')
  blur = lambda x: _gaussian_blur(x, filter_size, sigma)
  mu_a, mu_b = blur(a), blur(b)
  # Variances as E[x^2] - E[x]^2 can dip below zero by rounding; clamp so the ratio stays bounded.
  var_a = jnp.maximum(blur(a * a) - mu_a**2, 0.0)
  var_b = jnp.maximum(blur(b * b) - mu_b**2, 0.0)
  cov = blur(a * b) - mu_a * mu_b
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
  return jnp.mean(ssim_map)
