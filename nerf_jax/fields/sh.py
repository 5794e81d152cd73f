"""Real spherical harmonics of a unit direction: instant-NGP's direction encoding."""

import flax.linen as nn
import jax.numpy as jnp

from nerf_jax import config_rules

KEYS = {'model.sh_degree': (4, "'sh' dir_encoding: bands 0 .. sh_degree - 1 (sh_degree^2 values)")}


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.sh_degree', 1, 4, integer=True)
  return problems


def spherical_harmonics(d, degree=4):
  """The real spherical harmonics of bands 0 .. degree - 1 at unit directions (degree^2 values).

  d: float32 [..., 3] unit vectors; degree: 1 .. 4 (instant-NGP's "degree 4" is 16 values)
  returns float32 [..., degree^2], orthonormal over the sphere: the integral of Y_i Y_j over the unit
  sphere is 1 if i == j else 0 (tests/test_hashgrid.py checks it by quadrature).
  """
  if not 1 <= degree <= 4:
    raise ValueError(f'spherical harmonics of degree 1 to 4, got {degree}')
  x, y, z = d[..., 0], d[..., 1], d[..., 2]
  xx, yy, zz = x * x, y * y, z * z
  out = [jnp.full_like(x, 0.28209479177387814)]
  if degree > 1:
    c = 0.4886025119029199
    out += [-c * y, c * z, -c * x]
  if degree > 2:
    out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
            0.31539156525252005 * (2.0 * zz - xx - yy), -1.0925484305920792 * x * z,
            0.5462742152960396 * (xx - yy)]
  if degree > 3:
    out += [-0.5900435899266435 * y * (3.0 * xx - yy), 2.890611442640554 * x * y * z,
            -0.4570457994644658 * y * (4.0 * zz - xx - yy), 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            -0.4570457994644658 * x * (4.0 * zz - xx - yy), 1.445305721320277 * z * (xx - yy),
            -0.5900435899266435 * x * (xx - 3.0 * yy)]
  return jnp.stack(out, axis=-1)


class SphericalHarmonics(nn.Module):
  """spherical_harmonics as a direction encoding. __call__: float32 [..., 3] -> [..., degree^2]."""
  degree: int = 4

  def __call__(self, d):
    return spherical_harmonics(d, self.degree)


def build(model_config, role):
  """model.sh_degree bands (directions)."""
  del role
  return SphericalHarmonics(model_config.sh_degree)
