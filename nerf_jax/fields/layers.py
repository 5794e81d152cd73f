"""The dense layer every field's MLP is built from: features-first activations, products that may run
in bfloat16.

Activations between layers are features-first, [features, points], not flax's [points, features].
A layer's backward pass contracts its input and its output's gradient over the points for the
kernel's gradient. Points-last, the left operand of every product of the forward and backward pass
contracts its last axis, the only form XLA's CPU runtime hands to its fast product kernels (YNNPACK);
points-first, the kernel's gradient contracts the first axis and runs as a generic dot at about half
the rate (`python benchmarks/run.py --profile --only nerf_cpu`: the backward products of `lego_cpu`'s
step 373 -> 206 ms, README, Performance). A field moves its encoded inputs to features-first once
(`features_first`) and its outputs back (`features_last`).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import precision
from nerf_jax.errors import ConfigError

# config.model.dtype -> the dtype of the layers' matrix products (their operands; they accumulate in
# float32). Parameters, gradients, activations between layers, the encoding (sin of 2^9 x needs
# float32's mantissa) and volume rendering stay float32 either way.
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name):
  """The jnp dtype for config.model.dtype ('auto': as precision.resolve picks for this device; main.py
  resolves it first, so a run's config.json holds the dtype it used), or a ConfigError naming the
  choices."""
  if name == precision.AUTO:
    name, _ = precision.resolve(name)
  if name not in COMPUTE_DTYPES:
    raise ConfigError(f'model.dtype must be one of {sorted(COMPUTE_DTYPES) + [precision.AUTO]}, got {name!r}.')
  return COMPUTE_DTYPES[name]


def features_first(x):
  """x: [..., F] -> [F, N], N the product of the leading axes."""
  # A real transposed copy: left a transpose, XLA folds it into the products that read it, and the
  # first layer's kernel gradient would contract its left operand's first axis again.
  return jax.lax.optimization_barrier(x.reshape(-1, x.shape[-1]).T)


def features_last(x, lead):
  """x: [F, N] -> [*lead, F] (features_first's inverse; prod(lead) == N)."""
  return x.T.reshape(tuple(lead) + (x.shape[0],))


def add_per_ray(per_sample, per_ray):
  """per_sample: [F, R * S] (each ray's S samples together, as features_first leaves [R, S, ...]);
  per_ray: [F, R] -> per_sample plus each ray's column on each of its samples, [F, R * S]."""
  f, n = per_sample.shape
  return (per_sample.reshape(f, per_ray.shape[1], -1) + per_ray[:, :, None]).reshape(f, n)


def per_ray_inputs(encoded_dirs, conditioning, cond):
  """The colour branch's per-ray input, features-first: the encoded direction float32 [..., D], and
  after it conditioning(cond) [..., F] where the field has a conditioning module -> [D (+ F), rays]."""
  if conditioning is None:
    return features_first(encoded_dirs)
  if cond is None or cond.camera is None:
    raise ConfigError('This field is conditioned per ray (its conditioning module needs the rays\' '
                     'camera indices), but the rays carry none: build them with camera= (SceneTask.rays).')
  code = conditioning(cond).astype(encoded_dirs.dtype)
  return features_first(jnp.concatenate([encoded_dirs, code], axis=-1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def product(kernel, x, dtype=jnp.float32):
  """kernel.T @ x from `dtype` operands, accumulated in and returned as float32.

  kernel: float32 [n, m]; x: float32 [n, N] -> float32 [m, N].
  bfloat16 operands with a float32 result is the form CPUs with AVX-512 BF16 and GPUs' tensor cores
  run at twice the float32 rate (a 4096 x 4096 product on the project's AVX-512 BF16 CPU: 344 GFLOP/s,
  against 179 in float32 and 170 with a bfloat16 result), and sums over hundreds of inputs keep
  float32's precision. The custom gradient keeps the backward products in that form too (autodiff
  would multiply the float32 cotangent by bfloat16 operands, at the float32 rate), and every product's
  left operand contracting its last axis (module docstring).
  """
  return _product_fwd(kernel, x, dtype)[0]


def _product_fwd(kernel, x, dtype):
  # XLA folds a transpose into the product that reads it, which would make this product's left operand
  # contract its first axis: the barrier keeps kernel.T a real [m, n] array (a copy of the small kernel).
  kernel_t = jax.lax.optimization_barrier(kernel.T).astype(dtype)
  x = x.astype(dtype)
  return jnp.matmul(kernel_t, x, preferred_element_type=jnp.float32), (kernel.astype(dtype), x)


def _product_bwd(dtype, residuals, g):
  kernel, x = residuals
  g = g.astype(dtype)
  dx = jnp.matmul(kernel, g, preferred_element_type=jnp.float32)  # [n, m] @ [m, N]
  # The kernel's gradient sums over the points, in float32: [n, N] x [m, N] -> [n, m].
  dk = jax.lax.dot_general(x, g, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  return dk, dx


product.defvjp(_product_fwd, _product_bwd)


class Dense(nn.Module):
  """nn.Dense on features-first activations: x float32 [in, N] -> float32 [features, N].

  The same parameters as nn.Dense (kernel [in, features], lecun-normal; bias [features], zeros), so the
  same key initialises both alike and checkpoints carry over. dtype: the product's (`product`);
  kernel_init, bias_init: other initialisers (an SDF's geometric initialisation); twice_differentiable:
  a plain float32 product without `product`'s custom gradient (which JAX cannot differentiate again
  inside shard_map), for a network whose gradient is itself trained (an SDF's analytic normal).
  """
  features: int
  dtype: type = jnp.float32
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  twice_differentiable: bool = False

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (x.shape[0], self.features))
    y = jnp.matmul(kernel.T, x) if self.twice_differentiable else product(kernel, x, self.dtype)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,))[:, None]
    return y


def colour_mlp(layer, h, encoded_dirs, conditioning, cond, width, depth, lead):
  """instant-NGP's colour network, called inside a field's compact __call__ (its layers are the field's):
  sigmoid of `depth` ReLU layers of `width` on concat(h, the per-ray input), the first as two products
  so the direction's is computed once per ray.

  layer(features, name, **kw) -> a Dense of the field; h: float32 [F, R * S] features-first, per sample;
  encoded_dirs: float32 [R, D]; conditioning, cond: as per_ray_inputs; lead: the samples' shape [R, S]
  returns rgb float32 [*lead, 3]
  """
  directions = per_ray_inputs(encoded_dirs, conditioning, cond)  # [features, rays]
  directions = layer(width, 'colour_0_dirs', use_bias=False)(directions)
  x = nn.relu(add_per_ray(layer(width, 'colour_0')(h), directions))
  for i in range(1, depth):
    x = nn.relu(layer(width, f'colour_{i}')(x))
  return features_last(nn.sigmoid(layer(3, 'rgb')(x)), lead)
