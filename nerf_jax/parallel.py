"""Data parallelism over every device of every process: one mesh axis, 'data'.

Parameters and optimiser state are replicated; each device takes its slice of a step's rays (or
pixels) and of every rendering chunk; gradients and metrics are averaged over the axis. The same code
runs on 1 device, on 8, and on several hosts (jax.distributed): a mesh of one device is the
single-device case, not a separate path.

We use jax.shard_map under jit rather than pmap: since JAX 0.8 pmap is built on shard_map and kept in
maintenance mode, and shard_map's arrays are ordinary global jax.Arrays, so orbax saves and restores
them on any number of processes with no leading device axis to add or strip.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nerf_jax.errors import ConfigError

AXIS = 'data'


def initialize(distributed_config):
  """Joins JAX's distributed runtime when the config or the environment asks for several processes.

  distributed_config: config.distributed (coordinator_address, num_processes, process_id). An empty
  coordinator_address falls back to JAX's environment variables (JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID) and cluster detection; with neither, this is a single process.
  Must run before anything touches a device.
  """
  c = distributed_config
  if c.coordinator_address:
    if c.num_processes < 1 or not 0 <= c.process_id < c.num_processes:
      raise ConfigError(f'distributed.coordinator_address is set, so distributed.num_processes (got '
                        f'{c.num_processes}) must be >= 1 and distributed.process_id (got '
                        f'{c.process_id}) in [0, num_processes).')
    jax.distributed.initialize(c.coordinator_address, c.num_processes, c.process_id)
  elif os.environ.get('JAX_COORDINATOR_ADDRESS'):
    jax.distributed.initialize()


def make_mesh(devices=None):
  """A 1-D mesh over `devices` (default: every device of every process)."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), (AXIS,))


def replicated(mesh):
  return NamedSharding(mesh, PartitionSpec())


def split(mesh):
  """Leading axis divided over the mesh's devices."""
  return NamedSharding(mesh, PartitionSpec(AXIS))


def put(tree, sharding):
  """Host arrays, the same on every process, -> global jax.Arrays laid out by `sharding`.

  Works on several processes, where jax.device_put cannot reach the other processes' devices: each
  process places only its own devices' pieces.
  """
  def place(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree_util.tree_map(place, tree)


def local_slice(tree, num_devices):
  """This device's part of a pytree of [n, ...] arrays: rows [i * n / d, (i + 1) * n / d).

  Call inside shard_map over AXIS. Returns arrays [n / num_devices, ...].
  """
  def take(x):
    size = x.shape[0] // num_devices
    return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(AXIS) * size, size)
  return jax.tree_util.tree_map(take, tree)


def is_main_process():
  """Whether this process writes files (logs, images, config.json): process 0 only."""
  return jax.process_index() == 0
