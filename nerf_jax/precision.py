"""model.dtype='auto': bfloat16 products where the device multiplies bfloat16 natively, float32 elsewhere.

bfloat16 products pay only with hardware for them: on a 2-core AVX-512 BF16 host configs/lego_cpu.py
trains 1.6x faster in bfloat16 (README, Mixed precision), but where the CPU has no bfloat16 instructions
XLA emulates them and they run slower than float32 (86-92 against 94-126 GFLOP/s on an AVX2-only day),
which is most laptops' case. So the choice follows the device, is said at start-up, and an explicit
dtype always wins.
"""

import jax

AUTO = 'auto'
# /proc/cpuinfo flags of x86 CPUs that multiply bfloat16 in hardware (AVX-512 BF16; AMX tiles).
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
# NVIDIA GPUs from Ampere (compute capability 8.0) on have bfloat16 tensor cores.
BF16_GPU_CAPABILITY = 8.0


def cpu_flags(path='/proc/cpuinfo'):
  """The CPU's feature flags (Linux's /proc/cpuinfo 'flags' line), or None where there is no such file
  (macOS, Windows)."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith('flags'):
          return set(line.split(':', 1)[1].split())
  except OSError:
    return None
  return set()


def native_bfloat16(device=None, flags=None):
  """(whether `device` multiplies bfloat16 natively, why, in words).

  device: a jax Device (default: the first); flags: the CPU's flags (default: cpu_flags()), for tests.
  """
  device = jax.devices()[0] if device is None else device
  if device.platform == 'tpu':
    return True, 'a TPU multiplies bfloat16 natively'
  if device.platform == 'gpu':
    capability = getattr(device, 'compute_capability', None)
    if capability is None:
      return False, f'{device.device_kind}: its bfloat16 support is unknown'
    if float(capability) >= BF16_GPU_CAPABILITY:
      return True, f'{device.device_kind} (compute capability {capability}) has bfloat16 tensor cores'
    return False, f'{device.device_kind} (compute capability {capability}) has no bfloat16 tensor cores'
  flags = cpu_flags() if flags is None else flags
  if flags is None:
    return False, 'this CPU\'s features cannot be read (no /proc/cpuinfo): bfloat16 may be emulated'
  found = [f for f in BF16_CPU_FLAGS if f in flags]
  if found:
    return True, f'this CPU multiplies bfloat16 natively ({", ".join(found)})'
  return False, (f'this CPU has no native bfloat16 (none of {", ".join(BF16_CPU_FLAGS)}): emulated bfloat16 '
                 f'products run slower than float32')


def resolve(name, saved=None, device=None, flags=None):
  """(the products' dtype name, why) for config.model.dtype `name`.

  An explicit 'float32' or 'bfloat16' is kept. 'auto' is the dtype a resumed run started with when
  `saved` (its config.json's model.dtype) names one, else bfloat16 where native_bfloat16(), else float32.
  """
  if name != AUTO:
    return name, 'set in the config'
  if saved not in (None, AUTO):
    return saved, 'the dtype this run started with (model.dtype=\'auto\' keeps it when resuming)'
  native, why = native_bfloat16(device, flags)
  return ('bfloat16' if native else 'float32'), f"model.dtype='auto': {why}"
