import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax.encoding import encoded_size, frequency_encoding, sine


def test_values_match_hand_computation():
  x = jnp.array([[0.5, -1.0]], jnp.float32)
  out = np.asarray(frequency_encoding(x, 2))
  # [x, sin(1x), sin(2x), cos(1x), cos(2x)], each block over both coordinates.
  expected = [0.5, -1.0,
              np.sin(0.5), np.sin(-1.0), np.sin(1.0), np.sin(-2.0),
              np.cos(0.5), np.cos(-1.0), np.cos(1.0), np.cos(-2.0)]
  np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_top_frequency_is_two_to_the_l_minus_one():
  x = jnp.array([[0.1]], jnp.float32)
  out = np.asarray(frequency_encoding(x, 10, include_input=False))
  np.testing.assert_allclose(out[0, 9], np.sin(2.0**9 * 0.1), atol=1e-4)
  np.testing.assert_allclose(out[0, 19], np.cos(2.0**9 * 0.1), atol=1e-4)


def test_shapes_and_batch_dims():
  x = jnp.zeros((4, 5, 3))
  assert frequency_encoding(x, 10).shape == (4, 5, encoded_size(3, 10)) == (4, 5, 63)
  assert frequency_encoding(x, 4, include_input=False).shape == (4, 5, 24)


def test_sine_matches_numpy_over_the_encodings_range():
  # Arguments up to 2^9 times points 20 units out (NeRF's top frequency), and the small ones.
  x = np.concatenate([np.linspace(-1e4, 1e4, 200_001), np.linspace(-4.0, 4.0, 10_001)]).astype(np.float32)
  np.testing.assert_allclose(np.asarray(sine(x)), np.sin(x.astype(np.float64)), rtol=0, atol=2e-7)
  # Every float32 in [8192, 10240]: where x / pi rounds to the wrong k near half-integers.
  dense = np.arange(8192.0, 10240.0, 2.0**-10, dtype=np.float32)
  np.testing.assert_allclose(np.asarray(sine(dense)), np.sin(dense.astype(np.float64)), rtol=0, atol=2e-7)
  # Far outside, less accurate but a sine's range; NaN stays NaN.
  far = np.float32([5e4, -7.3e6, 1e30, -3e38])
  assert np.all(np.abs(np.asarray(sine(far))) <= 1.0)
  assert np.all(np.isnan(np.asarray(sine(np.float32([np.nan, np.inf, -np.inf])))))


def test_sine_gradient_is_the_cosine():
  x = np.linspace(-300.0, 300.0, 10_007).astype(np.float32)
  grad = np.asarray(jax.vmap(jax.grad(sine))(x))
  np.testing.assert_allclose(grad, np.cos(x.astype(np.float64)), rtol=0, atol=1e-6)


def test_cosines_of_the_top_frequency_are_accurate_for_far_points():
  # cos t = sin(t + pi/2): the shift is rounded in float32, so far points lose a little, not more.
  x = np.linspace(-20.0, 20.0, 4001, dtype=np.float32)[:, None]
  out = np.asarray(frequency_encoding(x, 10, include_input=False))
  top = 2.0**9 * x[:, 0].astype(np.float64)
  np.testing.assert_allclose(out[:, 9], np.sin(top), atol=2e-7)
  np.testing.assert_allclose(out[:, 19], np.cos(top), atol=5e-4)
