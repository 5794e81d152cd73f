import numpy as np

from nerf_jax.tasks.image_fit import uv_grid


def test_uv_grid_corners_and_axes():
  grid = uv_grid(3, 5)
  assert grid.shape == (3, 5, 2) and grid.dtype == np.float32
  np.testing.assert_array_equal(grid[0, 0], [0, 0])   # top-left
  np.testing.assert_array_equal(grid[0, -1], [1, 0])  # top-right: u runs along the width
  np.testing.assert_array_equal(grid[-1, 0], [0, 1])  # bottom-left: v runs along the height
  np.testing.assert_array_equal(grid[-1, -1], [1, 1])
  np.testing.assert_allclose(grid[1, 2], [0.5, 0.5])
