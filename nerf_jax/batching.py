"""Which pixels (or rays) a training step uses: a pure function of (key, step), computed on the device.

Every epoch visits a fresh random permutation of the pool, so a step never repeats a pixel (the
`randint` duplicates pitfall) and no pixel is starved. The permutation is never materialised: a keyed
Feistel network is a bijection on [0, 2^k), and "cycle walking" (re-applying it until the value falls
below n) turns it into a bijection on [0, n). A step costs O(batch), not a shuffle of every pixel, and
resuming needs nothing but the step.
"""

import jax
import jax.numpy as jnp

_ROUNDS = 4


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
