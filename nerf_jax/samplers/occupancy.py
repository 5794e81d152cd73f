"""instant-NGP's sampler: one field queried at fixed steps through the cells an occupancy grid marks
occupied (nerf_jax.occupancy has the pure functions)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nerf_jax import config_rules, occupancy_grid, rendering, sampling, types
from nerf_jax.samplers.contraction import FAR_RADII, contraction_radius
from nerf_jax.samplers.base import Sampler

KEYS = {
    'model.grid_resolution': (128, "'occupancy' sampler: the grid's cells per side of model.box"),
    'model.grid_every': (16, "'occupancy' sampler: steps between the grid's updates"),
    'model.grid_warmup_steps': (256, "'occupancy' sampler: the first steps, whose updates look at every cell"),
    'model.grid_decay': (0.95, "'occupancy' sampler: the density's decay per update"),
    'model.grid_threshold': (0.01, "'occupancy' sampler: the opacity over a step that counts occupied"),
    'model.march_steps': (1024, "'occupancy' sampler: fixed steps along the box's diagonal (the step size "
                                "follows); with model.contraction, steps along each ray from near to far, "
                                "half of them out to the radius"),
    # Every stage but the last gives each ray its next samples, the last the rest of as many whole rays
    # as fit (the others are left out of the loss); rays whose transmittance is under 1e-4 after a
    # stage take no more (early termination).
    'model.march_samples': ((16, 16), "'occupancy' sampler: samples per ray, averaged over a batch, each "
                                      "marching stage may query while training"),
    # The images do not depend on it, the speed does (lego_fast_cpu at 200x200: 3.9 s an image with
    # (8, 8), 9.1 s with (32, 64), the same PSNR to 0.01 dB).
    'model.march_eval_samples': ((8, 8), "'occupancy' sampler: the same in evaluation and rendering, "
                                         "where the last stage repeats until no ray is left out"),
}
SAFE = ('model.march_eval_samples',)  # the images do not depend on it


def check(config):
  problems, m = [], config.model
  for key in ('model.grid_resolution', 'model.grid_every', 'model.march_steps'):
    config_rules.in_range(problems, config, key, 1, integer=True)
  config_rules.in_range(problems, config, 'model.grid_warmup_steps', 0, integer=True)
  config_rules.in_range(problems, config, 'model.grid_decay', 0, 1)
  config_rules.in_range(problems, config, 'model.grid_threshold', 0)
  config_rules.positive_ints(problems, config, 'model.march_samples')
  config_rules.positive_ints(problems, config, 'model.march_eval_samples')
  noise = m.get('density_noise', 0.0)  # the hierarchical sampler's key: absent if that plug-in is
  if noise > 0 or config.data.ndc:
    problems.append(f"model.sampler='occupancy' marches a box in world space: it needs model.density_noise=0 "
                    f"(got {noise}) and data.ndc=False (got {config.data.ndc}); or use "
                    f"model.sampler='hierarchical'")
  return problems


def march_step(model_config):
  """The step in world units: model.march_steps steps cross the box's diagonal (without contraction;
  with it the steps grow along the ray, occupancy_grid.march_contracted, and each cell has its own,
  OccupancySampler.cell_steps)."""
  lo, hi = model_config.box
  return float(np.sqrt(3.0) * (hi - lo) / model_config.march_steps)


class OccupancySampler(Sampler):
  """One field, sampled at a fixed step through the cells an occupancy grid marks occupied
  (instant-NGP's sampler; nerf_jax.occupancy has the pure functions).

  fine: the field (named as NeRF's fine one: checkpoints of either sampler name their field alike).
  The grid is the variable collection 'occupancy' ({'density', 'bits'}: float32 [res^3]), not
  trained by the optimiser: `update` refreshes it every grid_every steps (occupancy_grid.update_density).
  box: (lo, hi) of the cube the grid covers; step_size: world units between samples; max_steps:
  samples per ray before the grid (enough to cross the box); stages (training; eval_stages without
  keys): samples per ray, on average over the batch, that each marching stage may give the field.
  Every stage but the last gives each ray its next candidates, as many per ray as fit; after each,
  rays whose transmittance has fallen under transmittance_floor take no more (early termination, in
  static shapes); the last stage takes the remaining candidates of whole rays, in order, as many rays
  as fit, and marks the others incomplete (RenderResult.complete), so the loss leaves them out.
  Evaluation (keys None) repeats its last stage until no ray is incomplete. The budgets are per call:
  split a batch over devices or microbatches and each part has its share, so which rays fit (and so
  the update) depends on the split, unlike NeRF's sampler. The field's extras are not carried into the
  render (its samples are queried in budgeted slots, not per ray); a subclass's sample_opacity and
  extra_extras may add some to training renders, packed (samplers.neus does); a loss term that needs
  one the sampler does not give is refused before the first step (NerfTask's needs check).
  __call__(rays, keys=None, background=None) -> {'fine': RenderResult}.
  """
  STATE = ('occupancy',)
  CONTRACTS = True
  fine: nn.Module = None
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
  grid_every: int = 16
  grid_warmup_steps: int = 256
  grid_decay: float = 0.95
  grid_threshold: float = 0.01
  radius: float = None

  @classmethod
  def build(cls, data_config, model_config, near, far, make_field):
    m = model_config
    radius = contraction_radius(m, near)
    far = far if radius is None else FAR_RADII * radius
    return cls(fine=make_field(), near=near, far=far, box=tuple(m.box), resolution=m.grid_resolution,
               step_size=march_step(m), max_steps=m.march_steps, radius=radius, stages=tuple(m.march_samples),
               eval_stages=tuple(m.march_eval_samples), white_bkgd=data_config.white_bkgd,
               grid_every=m.grid_every, grid_warmup_steps=m.grid_warmup_steps, grid_decay=m.grid_decay,
               grid_threshold=m.grid_threshold)

  def field(self, points, viewdirs, cond=None):
    return self.fine(self.grid_points(points), viewdirs, cond)

  def grid_points(self, points):
    """World points float32 [..., 3] where the grid and the field see them: contracted, or as they are."""
    return points if self.radius is None else sampling.contract(points, self.radius)

  def update(self, variables, step, key, density):
    """Every grid_every steps the grid's densities are refreshed from the field
    (occupancy_grid.update_density) and its bits recomputed."""
    lo, hi = self.box
    # density() takes world points; the grid's cells are in contracted space when contraction is on.
    world = (lambda p: p) if self.radius is None else (lambda p: sampling.uncontract(p, self.radius))

    def refresh(variables):
      grid = variables['occupancy']
      new = occupancy_grid.update_density(
          grid['density'], grid['bits'], key, step, lambda p: density(variables, world(p)),
          res=self.resolution, lo=lo, hi=hi, warmup_steps=self.grid_warmup_steps, decay=self.grid_decay)
      bits = occupancy_grid.occupied_bits(new, self.cell_steps(), self.grid_threshold)
      return {**variables, 'occupancy': {'density': new, 'bits': bits}}

    return jax.lax.cond(step % self.grid_every == 0, refresh, lambda v: v, variables)

  def cell_steps(self):
    """The marching step in world units each cell is sampled at: step_size, or float32 [res^3] with
    contraction (occupancy_grid.contracted_step_sizes)."""
    if self.radius is None:
      return self.step_size
    lo, hi = self.box
    return occupancy_grid.contracted_step_sizes(self.resolution, lo, hi, near=self.near, far=self.far,
                                           radius=self.radius, max_steps=self.max_steps)

  def sample_opacity(self, out, viewdirs, deltas):
    """Each queried sample's optical depth over its interval, -log(1 - alpha): sigma * delta for a
    density field. out: the field's FieldOutput at samples [n, 1]; viewdirs: float32 [n, 3] unit;
    deltas: float32 [n] the intervals in world units. Returns (float32 [n], {name: [n, ...]} carried
    into the training render's extras, packed, with 'sample_valid' bool [N] marking the real ones)."""
    del viewdirs
    return out.density[:, 0] * deltas, {}

  def behind(self, rays, keys, background):
    """The colour behind each ray's foreground (float32 [R, 3], or None: white_bkgd decides): the
    caller's `background` here; a subclass may render a background field there (samplers.neus).
    rays: Rays [R]; keys: uint32 [R, 2] or None."""
    del rays, keys
    return background

  def extra_extras(self, keys):
    """{name: array} a subclass adds to the training render's extras (keys: uint32 [R, 2]). None here."""
    del keys
    return {}

  def report(self, variables):
    """The share of the grid's cells that rays may sample, and of those the updates have looked at."""
    grid = variables['occupancy']
    return {'grid_occupancy': round(float(jnp.mean(grid['bits'])), 4),
            'grid_cells_seen': round(float(jnp.mean(grid['density'] >= 0)), 4)}

  @nn.compact
  def __call__(self, rays, keys=None, background=None):
    """rays: Rays [...] (float32 [..., 3] each); keys: uint32 [..., 2] or None (each ray's first
    step in the middle of its step); background: float32 [..., 3] or None (white_bkgd decides)."""
    batch_shape = rays.origins.shape[:-1]
    flat = lambda x: None if x is None else x.reshape(-1, x.shape[-1])
    rays, keys, background = jax.tree_util.tree_map(flat, rays), flat(keys), flat(background)
    background = self.behind(rays, keys, background)
    cells = self.resolution ** 3
    self.variable('occupancy', 'density', lambda: -jnp.ones(cells, jnp.float32))
    bits = self.variable('occupancy', 'bits', lambda: jnp.ones(cells, jnp.float32)).value
    lo, hi = self.box
    cond = types.Conditioning.of(rays)
    origins, directions = rays.origins, rays.directions
    num_rays, steps = origins.shape[0], self.max_steps
    if keys is None:
      offsets = jnp.full((num_rays,), 0.5, jnp.float32)
    else:
      offsets = jax.vmap(lambda key: jax.random.uniform(jax.random.fold_in(key, 1), ()))(keys)
    if self.radius is None:
      z_vals, dt, valid = occupancy_grid.march(origins, directions, offsets, near=self.near, far=self.far, lo=lo,
                                          hi=hi, step_size=self.step_size, max_steps=steps)
      dt = jnp.broadcast_to(dt[:, None], z_vals.shape)
    else:  # every step is inside the contracted box; steps grow with distance
      z_vals, dt = occupancy_grid.march_contracted(offsets, near=self.near, far=self.far, split=self.radius,
                                              max_steps=steps)
      valid = dt > 0  # the last steps of a jittered ray are cut to nothing at far
    points = sampling.points_along(rays, z_vals)
    cell, _ = occupancy_grid.cell_index(self.grid_points(points), lo, hi, self.resolution)
    candidates = valid & (bits[cell] > 0)
    # Samples are named by their flat index ray * K + step into [R, K]; pad = R * K names an unused
    # slot of select_samples', whose ray R is out of range (segment sums drop it).
    pad = num_rays * steps
    flat_z = z_vals.reshape(-1)
    # Each step's length in world units (step_size without contraction), flat like z_vals.
    world_dt = (dt * jnp.linalg.norm(directions, axis=-1)[:, None]).reshape(-1)

    def query(module, index, state):
      """The field at the samples `index` (int32 [budget], pad for none): their optical depths float32
      [budget] (sample_opacity; 0 for pad), colours float32 [budget, 3], the optical depth in front
      (float32 [budget], from earlier queries) and sample_opacity's extras, and the state with them
      marked taken."""
      taken, optical = state
      ray = index // steps
      safe = jnp.minimum(ray, num_rays - 1)
      ray_cond = jax.tree_util.tree_map(lambda x: x[safe], cond)
      z = flat_z[jnp.minimum(index, pad - 1)]
      points = origins[safe] + z[:, None] * directions[safe]
      out = module.fine(module.grid_points(points)[:, None, :], rays.viewdirs[safe], ray_cond)
      tau, extras = module.sample_opacity(out, rays.viewdirs[safe], world_dt[jnp.minimum(index, pad - 1)])
      tau = jnp.where(index < pad, tau, 0.0)
      before = optical[safe]
      optical = optical + jax.ops.segment_sum(tau, ray, num_segments=num_rays)
      return (tau, out.rgb[:, 0], before, extras), (taken.at[index].set(True), optical)

    def remaining(state):
      """bool [R, K]: the candidates not yet queried of the rays still seen through."""
      taken, optical = state
      alive = jnp.exp(-optical) > self.transmittance_floor
      return candidates & ~taken[:-1].reshape(num_rays, steps) & alive[:, None]

    state = (jnp.zeros(pad + 1, bool), jnp.zeros(num_rays, jnp.float32))
    stages = self.stages if keys is not None else self.eval_stages
    queried = []  # (index, optical depth, rgb, optical depth in front, extras) of each stage
    for stage, per_ray in enumerate(stages):
      mask = remaining(state)
      if stage < len(stages) - 1:  # the next candidates of every ray still seen through
        index = occupancy_grid.select_samples(mask, num_rays * per_ray)
      else:  # the rest of whole rays; a ray that does not fit is left out of the loss
        index, fits = occupancy_grid.select_rays(mask, num_rays * per_ray)
        complete = fits | ~jnp.any(mask, axis=1)
      samples, state = query(self, index, state)
      queried.append((index, *samples))
    far = (z_vals[:, -1] + dt[:, -1])[:, None]
    if keys is not None:
      # Training renders only the samples queried, packed: the dense [R, K] block with zeros where
      # the grid skipped cost as much as the field at K = 512 (benchmarks/run.py --profile --only
      # nerf_fast_cpu). Each stage's samples are in ray order (select_* keep it), and lie behind the
      # earlier stages' samples of their ray (each stage takes the first candidates left).
      weights = [rendering.weights_from_density_packed(tau, 1.0, index // steps, before)
                 for index, tau, _, before, _ in queried]
      index, _, sample_rgb, _ = (jnp.concatenate(parts) for parts in list(zip(*queried))[:4])
      weights = jnp.concatenate(weights)
      colour, depth, acc, disp = rendering.composite_packed(
          weights, sample_rgb, flat_z[jnp.minimum(index, pad - 1)], index // steps, far=far[:, 0],
          white_bkgd=self.white_bkgd, background=background)
      dense_weights = jnp.zeros(pad + 1, jnp.float32).at[index].set(weights)[:-1].reshape(num_rays, steps)
      extras = {name: jnp.concatenate([stage[4][name] for stage in queried]) for name in queried[0][4]}
      if extras:  # per queried sample, packed: which of the slots are samples
        extras['sample_valid'] = index < pad
      extras.update(self.extra_extras(keys))
      result = types.RenderResult(rgb=colour, depth=depth, acc=acc, disp=disp, weights=dense_weights,
                                  z_vals=z_vals, edges=rendering.interval_edges(z_vals, far), extras=extras)
    else:
      # Evaluation leaves no ray out: the last stage again, on the rays that did not fit, until all
      # have every sample they need (at most enough rounds to take every candidate); the samples
      # are gathered densely, [R, K], as their number is not known before.
      budget, rounds = num_rays * stages[-1], -(-pad // (num_rays * stages[-1])) + 1
      tau, rgb = jnp.zeros(pad + 1, jnp.float32), jnp.zeros((pad + 1, 3), jnp.float32)
      for index, sample_tau, sample_rgb, _, _ in queried:
        tau, rgb = tau.at[index].set(sample_tau), rgb.at[index].set(sample_rgb)

      def more(module, carry):
        del module
        return jnp.logical_and(~jnp.all(carry[1]), carry[2] < rounds)

      def again(module, carry):
        (state, tau, rgb), _, round_ = carry
        mask = remaining(state)
        index, fits = occupancy_grid.select_rays(mask, budget)
        (sample_tau, sample_rgb, _, _), state = query(module, index, state)
        dense = (state, tau.at[index].set(sample_tau), rgb.at[index].set(sample_rgb))
        return dense, fits | ~jnp.any(mask, axis=1), round_ + 1

      (_, tau, rgb), complete, _ = nn.while_loop(more, again, self, ((state, tau, rgb), complete,
                                                                     jnp.int32(0)))
      # Alphas from the optical depths, then the one compositing path of densities and SDFs alike.
      weights = rendering.weights_from_alpha(1.0 - jnp.exp(-tau[:-1].reshape(num_rays, steps)))
      result = rendering.composite(weights, rgb[:-1].reshape(num_rays, steps, 3), z_vals,
                                   white_bkgd=self.white_bkgd, background=background,
                                   edges=rendering.interval_edges(z_vals, far))
    # Packed extras (per queried sample) keep their own shape; everything else is per ray.
    extras, result = result.extras, result.replace(complete=complete, extras={})
    result = jax.tree_util.tree_map(lambda x: x.reshape(*batch_shape, *x.shape[1:]), result)
    return {'fine': result.replace(extras=extras)}
