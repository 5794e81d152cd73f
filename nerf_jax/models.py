"""The networks the tasks train, as Flax modules: ImageMLP (image fitting) and NeRF (coarse + fine
fields with hierarchical sampling and volume rendering). Fields and encodings are in fields/."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import occupancy, rendering, sampling
from nerf_jax.fields.layers import Dense, features_first, features_last


class ImageMLP(nn.Module):
  """Image fitting: pixel coordinates (u, v) -> RGB.

  encoding: module mapping float32 [..., 2] to [..., features] (fields.ENCODINGS); width, depth:
  hidden layer size and count (ReLU); dtype: the matrix products' dtype (parameters stay float32).
  """
  encoding: nn.Module
  width: int = 128
  depth: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, uv):
    """uv: float32 [..., 2] in [0, 1] -> rgb: float32 [..., 3] in (0, 1)."""
    encoded = self.encoding(uv)
    x = features_first(encoded)  # layers.Dense's layout
    for _ in range(self.depth):
      x = nn.relu(Dense(self.width, self.dtype)(x))
    return features_last(nn.sigmoid(Dense(3, self.dtype)(x)), encoded.shape[:-1])


class NeRF(nn.Module):
  """Coarse and fine fields with stratified then hierarchical sampling and volume rendering.

  coarse, fine: two field modules (fields.build_field), each (points [..., S, 3], viewdirs [..., 3])
  -> (rgb [..., S, 3], sigma [..., S]); with density_noise > 0, training also passes raw_noise
  [..., S], to be added to the density before its activation (fields.mlp.NerfMLP).
  lindisp: coarse samples linear in inverse depth (sampling.stratified_samples).
  __call__(rays, keys, background) -> (coarse RenderResult, fine RenderResult). keys: one PRNG key
  per ray, or None (deterministic: bin centres and quantiles); background: float32 [..., 3] behind
  each ray, or None (white_bkgd decides).
  """
  coarse: nn.Module
  fine: nn.Module
  num_coarse: int = 64
  num_fine: int = 128
  near: float = 2.0
  far: float = 6.0
  white_bkgd: bool = True
  lindisp: bool = False
  density_noise: float = 0.0

  def __call__(self, rays, keys=None, background=None):
    """rays: Rays [...] (each field float32 [..., 3]); keys: uint32 [..., 2] or None.

    A key per ray makes a ray's jitter a property of the ray, not of the batch's shape: any split of
    a batch (devices, microbatches) samples the same depths. Only the sampling is mapped over the rays;
    the networks see the whole batch at once.
    """
    batch_shape = rays.origins.shape[:-1]
    stratified = lambda key, shape: sampling.stratified_samples(
        key, self.near, self.far, self.num_coarse, shape, lindisp=self.lindisp)
    ray_keys = keys
    if keys is None:
      z_vals = stratified(None, batch_shape)
    else:
      keys = jnp.vectorize(jax.random.split, signature='(k)->(2,k)')(keys)
      coarse_keys, fine_keys = keys[..., 0, :], keys[..., 1, :]
      z_vals = jnp.vectorize(lambda key: stratified(key, ()), signature='(k)->(s)')(coarse_keys)
    coarse = self._render(self.coarse, rays, z_vals, self._noise(ray_keys, 1, z_vals.shape), background)
    if keys is None:
      z_vals = sampling.hierarchical_samples(None, z_vals, coarse.weights, self.num_fine)
    else:
      z_vals = jnp.vectorize(
          lambda key, z, w: sampling.hierarchical_samples(key, z, w, self.num_fine),
          signature='(k),(s),(s)->(f)')(fine_keys, z_vals, coarse.weights)
    return coarse, self._render(self.fine, rays, z_vals, self._noise(ray_keys, 2, z_vals.shape), background)

  def _noise(self, ray_keys, stream, shape):
    """Gaussian noise for the raw densities, float32 `shape` [..., S], or None (evaluation, or
    density_noise 0). Drawn from the ray's key folded with `stream`, so runs without noise keep their
    random numbers."""
    if ray_keys is None or self.density_noise <= 0:
      return None
    draw = lambda key: jax.random.normal(jax.random.fold_in(key, stream), shape[-1:])
    return self.density_noise * jnp.vectorize(draw, signature='(k)->(s)')(ray_keys)

  def _render(self, field, rays, z_vals, raw_noise=None, background=None):
    points = rays.origins[..., None, :] + z_vals[..., :, None] * rays.directions[..., None, :]
    # raw_noise only where there is some: a field without the argument works until density_noise > 0.
    rgb, sigma = field(points, rays.viewdirs) if raw_noise is None else field(points, rays.viewdirs, raw_noise)
    return rendering.volume_render(rgb, sigma, z_vals, rays.directions, far=self.far,
                                   white_bkgd=self.white_bkgd, background=background)


class OccupancyNeRF(nn.Module):
  """One field, sampled at a fixed step through the cells an occupancy grid marks occupied
  (instant-NGP's sampler; nerf_jax.occupancy has the pure functions).

  fine: the field (named as NeRF's fine one, so every mode that queries `fine` works unchanged).
  The grid is the variable collection 'occupancy' ({'density', 'bits'}: float32 [res^3]), not
  trained by the optimiser: the task's after_step updates it (tasks.nerf.NerfTask.after_step).
  box: (lo, hi) of the cube the grid covers; step_size: world units between samples; max_steps:
  samples per ray before the grid (enough to cross the box); stages (training; eval_stages without
  keys): samples per ray, on average over the batch, that each marching stage may give the field.
  Every stage but the last gives each ray its next candidates, as many per ray as fit; after each,
  rays whose transmittance has fallen under transmittance_floor take no more (early termination, in
  static shapes); the last stage takes the remaining candidates of whole rays, in order, as many rays
  as fit, and marks the others incomplete (RenderResult.complete), so the loss leaves them out.
  Evaluation (keys None) repeats its last stage until no ray is incomplete. The budgets are per call:
  split a batch over devices or microbatches and each part has its share, so which rays fit (and so
  the update) depends on the split, unlike NeRF's sampler.
  __call__(rays, keys=None, background=None) -> (RenderResult,): one render (NeRF's has two).
  """
  fine: nn.Module
  near: float = 2.0
  far: float = 6.0
  box: tuple = (-1.5, 1.5)
  resolution: int = 128
  step_size: float = 0.005
  max_steps: int = 1024
  stages: tuple = (16, 16)
  eval_stages: tuple = (8, 8)
  white_bkgd: bool = True
  transmittance_floor: float = 1e-4

  @nn.compact
  def __call__(self, rays, keys=None, background=None):
    """rays: Rays [...] (float32 [..., 3] each); keys: uint32 [..., 2] or None (each ray's first
    step in the middle of its step); background: float32 [..., 3] or None (white_bkgd decides)."""
    batch_shape = rays.origins.shape[:-1]
    flat = lambda x: None if x is None else x.reshape(-1, x.shape[-1])
    rays, keys, background = jax.tree_util.tree_map(flat, rays), flat(keys), flat(background)
    cells = self.resolution ** 3
    self.variable('occupancy', 'density', lambda: -jnp.ones(cells, jnp.float32))
    bits = self.variable('occupancy', 'bits', lambda: jnp.ones(cells, jnp.float32)).value
    lo, hi = self.box
    origins, directions = rays.origins, rays.directions
    num_rays, steps = origins.shape[0], self.max_steps
    if keys is None:
      offsets = jnp.full((num_rays,), 0.5, jnp.float32)
    else:
      offsets = jax.vmap(lambda key: jax.random.uniform(jax.random.fold_in(key, 1), ()))(keys)
    z_vals, dt, valid = occupancy.march(origins, directions, offsets, near=self.near, far=self.far, lo=lo,
                                        hi=hi, step_size=self.step_size, max_steps=steps)
    points = origins[:, None, :] + z_vals[..., None] * directions[:, None, :]
    cell, _ = occupancy.cell_index(points, lo, hi, self.resolution)
    candidates = valid & (bits[cell] > 0)
    # Flat [R * K] sample arrays with one extra slot at the end for select_samples' unused entries.
    pad = num_rays * steps
    flat_points = jnp.concatenate([points.reshape(-1, 3), jnp.zeros((1, 3), points.dtype)])
    ray_of = jnp.minimum(jnp.arange(pad + 1) // steps, num_rays - 1)
    world_dt = dt * jnp.linalg.norm(directions, axis=-1)  # = step_size, per ray

    def query(module, index, state):
      """The field at the samples `index` (int32 [budget], pad for none), written into the state."""
      sigma, rgb, taken, optical = state
      ray = ray_of[index]
      sample_rgb, sample_sigma = module.fine(flat_points[index][:, None, :], rays.viewdirs[ray])
      sample_sigma = jnp.where(index < pad, sample_sigma[:, 0], 0.0)
      return (sigma.at[index].set(sample_sigma), rgb.at[index].set(sample_rgb[:, 0]),
              taken.at[index].set(True),
              optical + jax.ops.segment_sum(sample_sigma * world_dt[ray], ray, num_segments=num_rays))

    def remaining(state):
      """bool [R, K]: the candidates not yet queried of the rays still seen through."""
      _, _, taken, optical = state
      alive = jnp.exp(-optical) > self.transmittance_floor
      return candidates & ~taken[:-1].reshape(num_rays, steps) & alive[:, None]

    state = (jnp.zeros(pad + 1, jnp.float32), jnp.zeros((pad + 1, 3), jnp.float32),
             jnp.zeros(pad + 1, bool), jnp.zeros(num_rays, jnp.float32))
    stages = self.stages if keys is not None else self.eval_stages
    for stage, per_ray in enumerate(stages):
      mask = remaining(state)
      if stage < len(stages) - 1:  # the next candidates of every ray still seen through
        index = occupancy.select_samples(mask, num_rays * per_ray)
      else:  # the rest of whole rays; a ray that does not fit is left out of the loss
        index, fits = occupancy.select_rays(mask, num_rays * per_ray)
        complete = fits | ~jnp.any(mask, axis=1)
      state = query(self, index, state)
    if keys is None:
      # Evaluation leaves no ray out: the last stage again, on the rays that did not fit, until all
      # have every sample they need (at most enough rounds to take every candidate).
      budget, rounds = num_rays * stages[-1], -(-pad // (num_rays * stages[-1])) + 1

      def more(module, carry):
        state, complete, round_ = carry
        del module, state
        return jnp.logical_and(~jnp.all(complete), round_ < rounds)

      def again(module, carry):
        state, _, round_ = carry
        mask = remaining(state)
        index, fits = occupancy.select_rays(mask, budget)
        return query(module, index, state), fits | ~jnp.any(mask, axis=1), round_ + 1

      state, complete, _ = nn.while_loop(more, again, self, (state, complete, jnp.int32(0)))
    sigma, rgb, _, _ = state
    far = (z_vals[:, -1] + dt)[:, None]
    result = rendering.volume_render(rgb[:-1].reshape(num_rays, steps, 3), sigma[:-1].reshape(num_rays, steps),
                                     z_vals, directions, far=far, white_bkgd=self.white_bkgd,
                                     background=background)
    result = result.replace(complete=complete)
    return (jax.tree_util.tree_map(lambda x: x.reshape(*batch_shape, *x.shape[1:]), result),)
