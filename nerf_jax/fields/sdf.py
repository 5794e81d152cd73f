"""A signed-distance field (NeuS family): an SDF network on the encoded point, its gradient (the normal)
by autodiff or by finite differences, and a colour network on the normal, a geometry feature and the
view direction (IDR's rendering network)."""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import config_rules
from nerf_jax.fields.hashgrid import HashEncoding
from nerf_jax.fields.layers import Dense, colour_mlp, compute_dtype, features_first
from nerf_jax.types import FieldOutput

GRADIENTS = ('analytic', 'finite_difference')
KEYS = {
    'model.sdf_depth': (1, "'sdf' field: hidden layers of the SDF network (model.width wide)"),
    'model.sdf_features': (15, "'sdf' field: features from the SDF network to the colour network"),
    # Geometric initialisation (Atzmon & Lipman's, as IDR and NeuS use it): the network starts as the
    # distance to this sphere about the origin, in world units; a room is the inside of one.
    'model.sdf_radius': (0.5, "'sdf' field: radius of the sphere the SDF starts as (world units)"),
    'model.sdf_inside_out': (False, "'sdf' field: the scene is inside the sphere (a room), not an object"),
    # The normal (and the eikonal loss's gradient): 'analytic' differentiates the network (the loss's
    # gradient is then a second derivative), 'finite_difference' takes Neuralangelo's 4 taps on a
    # tetrahedron, +-model.sdf_fd_step on each axis (4 more SDF queries, no double backward). On a
    # CPU the double backward costs less than the four queries: configs/demo_surface.py trains at 4.6
    # steps/s with 'analytic', 2.5 with 'finite_difference', the same PSNR after 200 steps (22 dB).
    'model.sdf_gradient': ('analytic', "'sdf' field: the SDF's gradient: 'analytic' or 'finite_difference'"),
    'model.sdf_fd_step': (0.005, "'sdf' field: the finite differences' step (world units)"),
    # NeuS's sharpness inv_s = exp(10 * variance) starts at exp(3) = 20: a blurry surface, which the
    # photometric loss sharpens.
    'model.sdf_init_variance': (0.3, "'sdf' field: initial variance; inv_s = exp(10 * variance), learned"),
}
# The taps' directions: a regular tetrahedron, sum_i v_i v_i^T = 4 I, so sum_i v_i f(x + h v_i) / 4h
# is the gradient to first order.
TETRAHEDRON = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], np.float32)


def check(config):
  problems, m = [], config.model
  config_rules.in_range(problems, config, 'model.sdf_depth', 1, integer=True)
  config_rules.in_range(problems, config, 'model.sdf_features', 0, integer=True)
  config_rules.in_range(problems, config, 'model.sdf_radius', 0, low_open=True)
  config_rules.in_range(problems, config, 'model.sdf_fd_step', 0, low_open=True)
  if m.sdf_gradient not in GRADIENTS:
    problems.append(f'model.sdf_gradient must be one of {list(GRADIENTS)}, got {m.sdf_gradient!r}')
  return problems


def value_and_gradient(fn, points, method, step):
  """An SDF, what else its function gives, and the SDF's gradient at points.

  fn: float32 [N, 3] -> (sdf float32 [N], aux float32 [F, N]); points: float32 [N, 3]; method:
  'analytic' (jax.vjp: a loss on the gradient then differentiates fn twice) or 'finite_difference'
  (fn also at the 4 taps points + step * TETRAHEDRON, one call on 5N points; only fn's first
  derivatives are then needed)
  returns (sdf float32 [N], aux float32 [F, N], gradient float32 [N, 3])
  """
  if method == 'analytic':
    (sdf, aux), pullback = jax.vjp(fn, points)
    (grad,) = pullback((jnp.ones_like(sdf), jnp.zeros_like(aux)))
    return sdf, aux, grad
  n = points.shape[0]
  taps = (points[:, None, :] + step * jnp.asarray(TETRAHEDRON)).reshape(-1, 3)
  values, aux = fn(jnp.concatenate([points, taps]))
  grad = values[n:].reshape(n, 4) @ jnp.asarray(TETRAHEDRON) / (4.0 * step)
  return values[:n], aux[:, :n], grad


def softplus100(x):
  """NeuS's activation: softplus with beta 100, nearly a ReLU but smooth, so the SDF's gradient (and
  its second derivative, for the analytic eikonal loss) is continuous. float32 [...] -> [...]."""
  return jax.nn.softplus(100.0 * x) / 100.0


def _normal(std, mean=0.0, rows=None):
  """A kernel initialiser: N(mean, std^2), or, where rows is given, that on the first `rows` input
  rows and 0 on the others (the encoded features start unseen, so the init is the sphere's)."""
  def init(key, shape, dtype=jnp.float32):
    kernel = mean + std * jax.random.normal(key, shape, dtype)
    return kernel if rows is None else kernel.at[rows:].set(0.0)
  return init


class SdfNetwork(nn.Module):
  """points float32 [N, 3] -> (sdf float32 [N], feature float32 [features, N], features-first).

  The point itself and its encoding go in (the point carries the sphere of the initialisation, the
  encoding the detail); float32 products always: finite differences of a step of 0.005 would drown in
  bfloat16's rounding of the activations.
  """
  encoding: nn.Module
  width: int = 64
  depth: int = 1
  features: int = 15
  radius: float = 0.5
  inside_out: bool = False
  twice_differentiable: bool = False  # layers.Dense's: the analytic normal's eikonal loss needs it

  @nn.compact
  def __call__(self, points):
    x = features_first(jnp.concatenate([points, self.encoding(points)], axis=-1))
    for i in range(self.depth):
      std = np.sqrt(2.0) / np.sqrt(self.width)
      x = softplus100(Dense(self.width, kernel_init=_normal(std, rows=3 if i == 0 else None),
                            twice_differentiable=self.twice_differentiable, name=f'sdf_{i}')(x))
    sign = -1.0 if self.inside_out else 1.0
    bias = lambda key, shape, dtype=jnp.float32: jnp.zeros(shape, dtype).at[0].set(-sign * self.radius)
    out = Dense(1 + self.features, kernel_init=_normal(1e-4, sign * np.sqrt(np.pi) / np.sqrt(self.width)),
                bias_init=bias, twice_differentiable=self.twice_differentiable, name='sdf_out')(x)
    return out[0], out[1:]


class SdfField(nn.Module):
  """(point, view direction) -> FieldOutput(rgb, density=None, extras={'sdf', 'gradient', 'inv_s'}).

  sdf float32 [..., S] (> 0 outside; the sign flips with inside_out's rooms), gradient float32
  [..., S, 3] (by `gradient`: 'analytic' or 'finite_difference' with step fd_step), inv_s float32
  [..., S] NeuS's learned sharpness (one parameter, 'variance', broadcast). The colour: sigmoid of a
  colour MLP (colour_depth hidden layers of width) on the unit normal, the SDF network's feature and
  the encoded view direction (with the per-ray conditioning, as the other fields). A sampler turns
  sdf, gradient and inv_s into alphas (rendering.neus_alpha).
  """
  encoding: nn.Module
  dir_encoding: nn.Module
  width: int = 64
  sdf_depth: int = 1
  features: int = 15
  colour_depth: int = 2
  radius: float = 0.5
  inside_out: bool = False
  gradient: str = 'analytic'
  fd_step: float = 0.005
  init_variance: float = 0.3
  dtype: Any = jnp.float32
  conditioning: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, points, viewdirs, cond=None, raw_noise=None):
    """points: float32 [..., S, 3]; viewdirs: float32 [..., 3] unit; cond: types.Conditioning [...] or
    None; raw_noise: unused (an SDF has no raw density to perturb)."""
    del raw_noise
    lead = points.shape[:-1]
    flat = points.reshape(-1, 3)
    # The SDF network (with its own copy of the encoding, unbound) as a pure function of its
    # parameters, which this module keeps as one entry 'sdf': jax.vjp (the analytic normal) must not
    # trace a bound Flax module, and Flax's lifted nn.vjp refuses a module holding another.
    net = SdfNetwork(self.encoding.clone(parent=None), self.width, self.sdf_depth, self.features, self.radius, self.inside_out,
                     twice_differentiable=self.gradient == 'analytic', parent=None)
    params = self.param('sdf', lambda key: net.init(key, jnp.zeros((1, 3), jnp.float32))['params'])
    sdf, feature, grad = value_and_gradient(lambda p: net.apply({'params': params}, p), flat, self.gradient,
                                            self.fd_step)
    normal = grad * jax.lax.rsqrt(jnp.sum(grad ** 2, axis=-1, keepdims=True) + 1e-12)  # finite at 0
    layer = lambda features, name, **kw: Dense(features, self.dtype, name=name, **kw)
    h = jnp.concatenate([features_first(normal), feature], axis=0)
    rgb = colour_mlp(layer, h, self.dir_encoding(viewdirs), self.conditioning, cond, self.width,
                     self.colour_depth, lead)
    variance = self.param('variance', nn.initializers.constant(self.init_variance), ())
    inv_s = jnp.clip(jnp.exp(10.0 * variance), 1e-6, 1e6)
    return FieldOutput(rgb=rgb, density=None,
                       extras={'sdf': sdf.reshape(lead), 'gradient': grad.reshape(*lead, 3),
                               'inv_s': jnp.broadcast_to(inv_s, lead)})


def build(model_config, encoding, dir_encoding, scene=None, conditioning=None):
  """model.sdf_* keys, model.width (both networks), model.depth (the colour network's hidden layers)."""
  del scene
  m = model_config
  if m.sdf_gradient == 'analytic' and isinstance(encoding, HashEncoding):
    encoding = encoding.clone(position_gradient=True)  # the normal differentiates the encoding too
  return SdfField(encoding=encoding, dir_encoding=dir_encoding, width=m.width, sdf_depth=m.sdf_depth,
                  features=m.sdf_features, colour_depth=m.depth, radius=m.sdf_radius,
                  inside_out=m.sdf_inside_out, gradient=m.sdf_gradient, fd_step=m.sdf_fd_step,
                  init_variance=m.sdf_init_variance, dtype=compute_dtype(m.dtype), conditioning=conditioning)
