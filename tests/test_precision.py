"""model.dtype='auto' (nerf_jax.precision): bfloat16 only where the device multiplies it natively."""

import types

from nerf_jax import config_checks, fields, precision
from tests.conftest import small_nerf_config

CPU = types.SimpleNamespace(platform='cpu', device_kind='cpu')
# Flags as /proc/cpuinfo lists them: an AVX2-only laptop, an AVX-512 server without BF16, a BF16 one.
AVX2 = {'fpu', 'sse4_2', 'avx', 'avx2', 'fma'}
AVX512 = AVX2 | {'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni'}


def test_auto_follows_the_cpu_flags():
  for flags, expected in ((AVX2, 'float32'), (AVX512, 'float32'), (AVX512 | {'avx512_bf16'}, 'bfloat16'),
                          (AVX2 | {'amx_bf16', 'amx_tile'}, 'bfloat16')):
    dtype, why = precision.resolve('auto', device=CPU, flags=flags)
    assert dtype == expected, (flags, why)
    assert ('natively' in why) == (expected == 'bfloat16') and why.startswith("model.dtype='auto'"), why
  _, why = precision.resolve('auto', device=CPU, flags=AVX512)
  assert 'avx512_bf16' in why and 'slower than float32' in why


def test_auto_on_gpus_by_compute_capability():
  h200 = types.SimpleNamespace(platform='gpu', device_kind='NVIDIA H200', compute_capability='9.0')
  t4 = types.SimpleNamespace(platform='gpu', device_kind='Tesla T4', compute_capability='7.5')
  assert precision.resolve('auto', device=h200)[0] == 'bfloat16'
  assert precision.resolve('auto', device=t4)[0] == 'float32'


def test_an_explicit_dtype_wins_and_a_resumed_run_keeps_its_own():
  bf16_cpu = AVX512 | {'avx512_bf16'}
  assert precision.resolve('float32', device=CPU, flags=bf16_cpu) == ('float32', 'set in the config')
  assert precision.resolve('bfloat16', device=CPU, flags=AVX2) == ('bfloat16', 'set in the config')
  dtype, why = precision.resolve('auto', saved='float32', device=CPU, flags=bf16_cpu)
  assert dtype == 'float32' and 'started with' in why
  assert precision.resolve('auto', saved='auto', device=CPU, flags=bf16_cpu)[0] == 'bfloat16'


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  path = tmp_path / 'cpuinfo'
  path.write_text('processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbugs\t\t: spectre_v1\n')
  assert precision.cpu_flags(str(path)) == {'fpu', 'avx2', 'avx512f', 'avx512_bf16'}
  assert precision.cpu_flags(str(tmp_path / 'missing')) is None  # macOS: no /proc/cpuinfo
  assert precision.resolve('auto', device=CPU, flags=None)[0] in ('float32', 'bfloat16')


def test_auto_is_a_valid_dtype_and_nonsense_is_named(spheres_root):
  config = small_nerf_config(spheres_root, **{'model.dtype': 'auto'})
  config_checks.validate(config)
  assert fields.compute_dtype('auto') == fields.COMPUTE_DTYPES[precision.resolve('auto')[0]]
  config.model.dtype = 'float16'
  try:
    config_checks.validate(config)
  except Exception as e:  # noqa: BLE001
    assert "model.dtype='float16' must be one of ['bfloat16', 'float32', 'auto']" in str(e)
  else:
    raise AssertionError('float16 was accepted')
