import jax.numpy as jnp
import numpy as np

from nerf_jax.encoding import encoded_size, frequency_encoding


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
