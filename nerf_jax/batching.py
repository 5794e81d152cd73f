"""Which pixels (or rays) a training step uses: a pure function of (key, step), computed on the device.

Every epoch visits a fresh random permutation of the pool, so a step never repeats a pixel (the
`randint` duplicates pitfall) and no pixel is starved. The permutation is never materialised: a keyed
Feistel network is a bijection on [0, 2^k), and "cycle walking" (re-applying it until the value falls
below n) turns it into a bijection on [0, n). A step costs O(batch), not a shuffle of every pixel, and
resuming needs nothing but the step.
"""

import dataclasses

import jax
import jax.numpy as jnp

from nerf_jax.errors import ConfigError

_ROUNDS = 4


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """What the trainer asks of a task's sample_batch: its settings, passed explicitly (static under jit).

  batch_size: items (rays, pixels) in a step's global batch; precrop_steps, precrop_frac: steps
  0 .. precrop_steps - 1 draw from the central crop spanning precrop_frac of each side.
  """
  batch_size: int
  precrop_steps: int = 0
  precrop_frac: float = 0.5

  @classmethod
  def from_config(cls, train_config):
    t = train_config
    return cls(batch_size=t.batch_size, precrop_steps=t.precrop_steps, precrop_frac=t.precrop_frac)


def size_problems(num_devices, *, batch_size=None, microbatches=1, pool=None, chunk=None,
                  eval_microbatches=1):
  """Every rule tying batch sizes to devices, microbatches and the data, in one place: a list of
  messages naming the key to change (empty when all hold).

  Checks what is given: the training batch (train.batch_size over `num_devices`, each device's share
  into train.microbatches parts, no more than the `pool` of items a step can draw from) and the
  rendering chunk (eval.chunk, likewise with eval.microbatches).
  """
  problems = []
  for key, size, parts_key, parts in (('train.batch_size', batch_size, 'train.microbatches', microbatches),
                                      ('eval.chunk', chunk, 'eval.microbatches', eval_microbatches)):
    if size is None:
      continue
    if size < 1 or size % num_devices:
      problems.append(f'{key}={size} does not split evenly over {num_devices} devices; use a positive '
                      f'multiple of {num_devices} (or run on fewer devices)')
    elif parts < 1 or (size // num_devices) % parts:
      problems.append(f'{key}={size} over {num_devices} device(s) leaves {size // num_devices} per device, '
                      f'which does not split into {parts_key}={parts} equal parts; make {key} a multiple '
                      f'of {num_devices * max(parts, 1)} or change {parts_key}')
  if batch_size is not None and pool is not None and batch_size > pool:
    problems.append(f'train.batch_size={batch_size} exceeds the {pool} items (rays, pixels) a step can '
                    f'draw from; lower it')
  return problems


def check_sizes(num_devices, **sizes):
  """size_problems as a ConfigError listing every problem, or nothing when the sizes are right."""
  problems = size_problems(num_devices, **sizes)
  if problems:
    raise ConfigError('; '.join(problems) + '.')


def _mix(x):
  """A 32-bit integer hash (lowbias32): good avalanche for the Feistel round function. uint32 [...]."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _feistel(x, round_keys, half_bits):
  """A keyed bijection on [0, 2^(2 * half_bits)). x: uint32 [...]."""
  mask = jnp.uint32((1 << half_bits) - 1)
  left, right = x >> half_bits, x & mask
  for i in range(_ROUNDS):
    left, right = right, left ^ (_mix(right ^ round_keys[i]) & mask)
  return (left << half_bits) | right


def permute(key, positions, n):
  """Image of `positions` under a random permutation of [0, n) chosen by `key`.

  positions: int [...] in [0, n) -> int32 [...] in [0, n); distinct positions give distinct values.
  n: a static Python int, 1 <= n < 2^31.
  """
  if not 1 <= n < 2**31:
    raise ValueError(f'permute needs 1 <= n < 2^31, got {n}')
  half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
  round_keys = jax.random.bits(key, (_ROUNDS,), jnp.uint32)
  walk = lambda y: jnp.where(y >= n, _feistel(y, round_keys, half_bits), y)
  y = _feistel(positions.astype(jnp.uint32), round_keys, half_bits)
  # Each pass leaves a value >= n with probability < 3/4 (the domain is < 4n); values already in
  # range are untouched, so the result is a bijection on [0, n).
  y = jax.lax.while_loop(lambda y: jnp.any(y >= n), walk, y)
  return y.astype(jnp.int32)


def epoch_batch(key, step, batch_size, n):
  """Indices of the `batch_size` pool items used at `step`, without replacement within an epoch.

  An epoch is n // batch_size steps over one permutation; the n % batch_size items left over change
  from epoch to epoch, so none is left out for good.
  key: PRNG key (the run's, not the step's); step: int32 []; returns int32 [batch_size] in [0, n).
  """
  if batch_size > n:
    raise ValueError(f'A step asks for {batch_size} items but the pool holds only {n}: lower the '
                     f'batch size (train.batch_size) or use more data.')
  steps_per_epoch = n // batch_size
  epoch, offset = step // steps_per_epoch, step % steps_per_epoch
  positions = offset * batch_size + jnp.arange(batch_size, dtype=jnp.int32)
  return permute(jax.random.fold_in(key, epoch), positions, n)


def precrop_active(step, precrop_steps):
  """Whether step `step` trains on the central crop only: exactly the steps 0 .. precrop_steps - 1.

  A pure function of the step, so the crop switches off on schedule whatever drives the loop
  (resumed runs, any number of devices or workers).
  """
  return step < precrop_steps


def crop_box(height, width, frac):
  """(row0, rows, col0, cols) of the central crop spanning `frac` of each side (NeRF's precrop)."""
  half_h, half_w = int(height // 2 * frac), int(width // 2 * frac)
  return height // 2 - half_h, 2 * half_h, width // 2 - half_w, 2 * half_w


def pixel_batch(key, step, num_images, height, width, batch_size, *, all_images, precrop_steps=0,
                precrop_frac=0.5):
  """Which pixels step `step` trains on, as (image, row, col), each int32 [batch_size].

  all_images: the batch is drawn from the pixels of every image, without replacement within an epoch;
    otherwise from one random image per step (NeRF's no_batching), without replacement within it.
  precrop: before `precrop_steps`, only pixels of the central crop (precrop_frac of each side).
  """
  def draw(row0, rows, col0, cols):
    per_image = rows * cols
    if all_images:
      flat = epoch_batch(key, step, batch_size, num_images * per_image)
      image, pixel = flat // per_image, flat % per_image
    else:
      if batch_size > per_image:
        raise ValueError(f'A step asks for {batch_size} rays but an image region has only {per_image} '
                         f'pixels: lower train.batch_size or use data.batching="all_images".')
      image_key, pixel_key = jax.random.split(jax.random.fold_in(key, step))
      image = jnp.full((batch_size,), jax.random.randint(image_key, (), 0, num_images), jnp.int32)
      pixel = permute(pixel_key, jnp.arange(batch_size), per_image)
    return image, row0 + pixel // cols, col0 + pixel % cols

  full = draw(0, height, 0, width)
  if precrop_steps <= 0:
    return full
  # Both draws cost O(batch); choosing by the step keeps the function pure and jit-friendly.
  crop = draw(*crop_box(height, width, precrop_frac))
  on = precrop_active(step, precrop_steps)
  return tuple(jnp.where(on, c, f) for c, f in zip(crop, full))
