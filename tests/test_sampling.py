import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import sampling


def test_stratified_deterministic_is_bin_centres():
  z = sampling.stratified_samples(None, 2.0, 6.0, 4, (3,))
  np.testing.assert_allclose(z, np.tile([2.5, 3.5, 4.5, 5.5], (3, 1)))


def test_stratified_random_stays_in_its_bin_and_is_unbiased():
  z = np.asarray(sampling.stratified_samples(jax.random.PRNGKey(0), 2.0, 6.0, 4, (20000,)))
  lower = np.array([2.0, 3.0, 4.0, 5.0])
  assert np.all(z >= lower) and np.all(z < lower + 1.0)
  assert np.all(np.diff(z, axis=-1) > 0)
  np.testing.assert_allclose(z.mean(axis=0), lower + 0.5, atol=0.01)  # sd of a mean ~0.002


def _inverse_cdf(bins, weights, u):
  """Reference: the quantile function of the piecewise-constant density, computed directly."""
  cdf = np.concatenate([[0.0], np.cumsum(weights) / np.sum(weights)])
  out = []
  for q in u:
    i = np.searchsorted(cdf, q, side='right') - 1
    i = min(i, len(weights) - 1)
    while weights[i] == 0:  # a zero-weight bin holds no probability mass
      i += 1
    out.append(bins[i] + (q - cdf[i]) / (cdf[i + 1] - cdf[i]) * (bins[i + 1] - bins[i]))
  return np.array(out)


def test_sample_pdf_is_the_inverse_cdf_of_a_known_histogram():
  bins = np.array([0.0, 1.0, 2.0, 4.0, 5.0])
  weights = np.array([1.0, 3.0, 0.0, 4.0])
  n = 64
  got = np.asarray(sampling.sample_pdf(None, jnp.asarray(bins), jnp.asarray(weights), n))
  u = (np.arange(n) + 0.5) / n
  # The 1e-5 weight floor shifts the CDF by ~1e-5 relative: far below this tolerance.
  np.testing.assert_allclose(got, _inverse_cdf(bins, weights, u), atol=1e-3)
  assert not np.any((got > 2.0 + 1e-3) & (got < 4.0 - 1e-3))  # nothing in the empty bin


def test_random_sample_pdf_matches_the_histogram():
  bins = jnp.array([0.0, 1.0, 2.0, 4.0, 5.0])
  weights = jnp.array([1.0, 3.0, 0.0, 4.0])
  samples = np.asarray(sampling.sample_pdf(jax.random.PRNGKey(0), jnp.tile(bins, (500, 1)),
                                           jnp.tile(weights, (500, 1)), 64)).ravel()
  counts, _ = np.histogram(samples, bins=np.asarray(bins))
  np.testing.assert_allclose(counts / counts.sum(), np.asarray(weights) / 8.0, atol=0.01)


def test_sample_pdf_of_all_zero_weights_is_uniform_and_finite():
  got = np.asarray(sampling.sample_pdf(None, jnp.linspace(2.0, 6.0, 9), jnp.zeros(8), 8))
  np.testing.assert_allclose(got, 2.0 + 4.0 * (np.arange(8) + 0.5) / 8, atol=1e-4)


def test_no_gradient_through_sample_positions():
  def f(w):
    return jnp.sum(sampling.sample_pdf(None, jnp.linspace(0.0, 1.0, 5), w, 8))
  np.testing.assert_array_equal(jax.grad(f)(jnp.ones(4)), 0.0)


def test_hierarchical_samples_concentrate_where_the_weights_are():
  z = sampling.stratified_samples(None, 2.0, 6.0, 64, (1,))
  weights = jnp.where(jnp.abs(z - 4.0) < 0.2, 1.0, 0.0)
  merged = np.asarray(sampling.hierarchical_samples(None, z, weights, 128))[0]
  assert merged.shape == (192,) and np.all(np.diff(merged) >= 0)
  fine = np.setdiff1d(merged, np.asarray(z[0]))
  assert np.mean(np.abs(fine - 4.0) < 0.25) > 0.95
