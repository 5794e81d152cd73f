import numpy as np
import jax.numpy as jnp

from nerf_jax import metrics


def _ssim_reference(a, b, size=11, sigma=1.5):
  """Direct SSIM: for every valid window, weighted means/variances with a 2D Gaussian."""
  t = np.arange(size) - (size - 1) / 2
  g = np.exp(-0.5 * (t / sigma) ** 2)
  w = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = 0.01**2, 0.03**2
  values = []
  for c in range(a.shape[2]):
    for i in range(a.shape[0] - size + 1):
      for j in range(a.shape[1] - size + 1):
        pa, pb = a[i:i + size, j:j + size, c], b[i:i + size, j:j + size, c]
        ma, mb = np.sum(w * pa), np.sum(w * pb)
        va, vb = np.sum(w * (pa - ma) ** 2), np.sum(w * (pb - mb) ** 2)
        cov = np.sum(w * (pa - ma) * (pb - mb))
        values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
  return np.mean(values)


def test_psnr_known_value():
  a = jnp.zeros((4, 4, 3))
  assert abs(float(metrics.psnr(a, a + 0.1)) - 20.0) < 1e-4  # mse 0.01 -> 20 dB


def test_ssim_matches_direct_computation():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(20, 18, 2)).astype(np.float32)
  b = np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1).astype(np.float32)
  np.testing.assert_allclose(float(metrics.ssim(jnp.asarray(a), jnp.asarray(b))),
                             _ssim_reference(a, b), rtol=1e-4)
  assert abs(float(metrics.ssim(jnp.asarray(a), jnp.asarray(a))) - 1.0) < 1e-5
