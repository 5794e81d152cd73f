"""NeuS on an occupancy grid (instant-nsr-pl's NeuS): an SDF field marched at fixed steps through the
occupied cells, each sample's alpha from its SDF (rendering.neus_alpha), the grid refreshed from the SDF,
eikonal gradients at the samples and at random points of the box for the loss."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import config_rules, fields, occupancy_grid, rendering, sampling
from nerf_jax.fields.hashgrid import HashEncoding
from nerf_jax.fields.ngp import NgpField
from nerf_jax.samplers.occupancy import OccupancySampler
from nerf_jax.types import NO_CAMERA, Conditioning

BACKGROUNDS = ('none', 'field')

KEYS = {
    # The eikonal loss on the samples alone leaves the SDF free wherever the grid has let no ray
    # sample (most of the box, after warm-up): there it could cross zero and leave pieces in the mesh.
    'model.neus_free_points': (1024, "'neus' sampler: random points of model.box per step whose SDF gradient "
                                     "the eikonal loss also sees"),
    # Photos without masks show more than the object: with 'none' the SDF would have to explain the
    # room behind it inside model.box. 'field' puts a second, small density field (hash grid + MLP,
    # no SDF) outside the box, in contracted space (sampling.contract: all of space beyond the box in
    # a shell), NeuS's and NeRF++'s answer; its render is what the object is composited onto.
    'model.neus_background': ('none', "'neus' sampler: behind the object, 'none' (the images' own "
                                      "background: white, or data.random_bkgd's) or 'field' (photos "
                                      "without masks)"),
    'model.neus_background_samples': (32, "'neus' sampler: samples per ray of the background field, "
                                          "even in disparity from the box to infinity"),
}


def check(config):
  problems = []
  config_rules.in_range(problems, config, 'model.neus_free_points', 0, integer=True)
  config_rules.one_of(problems, config, 'model.neus_background', BACKGROUNDS)
  config_rules.in_range(problems, config, 'model.neus_background_samples', 2, integer=True)
  if config.data.ndc:
    problems.append("model.sampler='neus' marches an SDF in world space: data.ndc=True would put the "
                    "surface in NDC space; set data.ndc=False (and data.bounds='scene' for real captures)")
  return problems


def max_alpha(sdf, inv_s, step):
  """The largest alpha a sample of SDF `sdf` (float32 [...]) can have over one step (world units): its
  ray heading straight into the surface (slope -1). What the occupancy grid keeps, as instant-nsr-pl
  does, so a cell is empty only if no ray through it could be stopped there."""
  return rendering.neus_alpha(sdf, -jnp.ones_like(sdf), jnp.full_like(sdf, step), inv_s)


class NeusSampler(OccupancySampler):
  """OccupancySampler's marching with NeuS's opacity: model.field='sdf' (fields.sdf), whose sdf,
  gradient and learned inv_s give each sample's alpha over its step (rendering.neus_alpha), composited
  as alphas (samplers.occupancy composites optical depths -log(1 - alpha), exactly the same weights
  alpha_i prod_{j<i}(1 - alpha_j), packed while training). Its `field` gives, as density, the largest
  optical depth per world unit a step could have (max_alpha), which the grid's update and the density
  histogram read; --mode mesh meshes -sdf at 0 (SURFACE_LEVEL). Training renders carry extras
  'sdf_gradient' (float32 [N, 3], the queried samples' packed, with 'sample_valid' bool [N] marking
  the real ones) and 'free_gradient' (float32 [free_points, 3], at random points of the box), for the
  eikonal loss (loss term 'eikonal').
  """
  NEEDS = ('rgb', 'sdf', 'gradient', 'inv_s')
  SURFACE_LEVEL = 0.0
  CONTRACTS = False  # its SDF lives in the world's box; the background field has its own contraction
  free_points: int = 1024
  background: nn.Module = None  # the background field (an NgpField on contracted points), or None
  background_samples: int = 32

  @classmethod
  def build(cls, data_config, model_config, near, far, make_field):
    m = model_config
    sampler = super().build(data_config, m, near, far, make_field)
    background = None
    if m.neus_background == 'field':  # small: the background is seen blurred, from afar
      background = NgpField(encoding=HashEncoding(num_levels=8, features=2, table_log2=15, coarsest=16, finest=256,
                                                  box=(-2.0, 2.0)),
                            dir_encoding=fields.build_encoding(m, 'direction'), width=32, geo_features=7,
                            colour_depth=1, box=(-2.0, 2.0))
    return sampler.clone(free_points=m.neus_free_points, background=background,
                         background_samples=m.neus_background_samples)

  @classmethod
  def scene_problems(cls, model_config, scene):
    if scene.alphas is None and model_config.neus_background == 'none':
      return ["model.sampler='neus' on photos without alpha (no masks) needs a background: set "
              "model.neus_background='field', or the SDF must model everything the photos show inside model.box"]
    return []

  def behind(self, rays, keys, background):
    """The background field's render of each ray beyond the box (float32 [R, 3]), over the caller's
    background; the caller's own without a background field."""
    if self.background is None:
      return background
    lo, hi = self.box
    radius = max(abs(lo), abs(hi))
    t_enter, t_exit = occupancy_grid.ray_box(rays.origins, rays.directions, lo, hi)
    start = jnp.where(t_enter <= t_exit, jnp.maximum(t_exit, self.near), self.near)[:, None]  # [R, 1]
    count = self.background_samples
    jitter = (0.5 if keys is None else
              jax.vmap(lambda key: jax.random.uniform(jax.random.fold_in(key, 11), (count,)))(keys))
    # Even in disparity from start (1) to 1/1000 of it: near samples dense, the last ones far out.
    disparity = 1.0 - (jnp.arange(count) + jitter) / count * (1.0 - 1e-3)
    z_vals = start / disparity
    points = sampling.contract(sampling.points_along(rays, z_vals), radius)
    out = self.background(points, rays.viewdirs, Conditioning.of(rays))
    return rendering.volume_render(out.rgb, out.density, z_vals, rays.directions, far=1.01 * z_vals[:, -1:],
                                   white_bkgd=self.white_bkgd, background=background).rgb

  def field(self, points, viewdirs, cond=None):
    out = self.fine(points, viewdirs, cond)
    alpha = jnp.minimum(max_alpha(out.extras['sdf'], out.extras['inv_s'], self.step_size), 1.0 - 1e-6)
    return out.replace(density=-jnp.log1p(-alpha) / self.step_size)

  def surface(self, points, viewdirs, cond=None):
    return -self.fine(points, viewdirs, cond).extras['sdf']

  def sample_opacity(self, out, viewdirs, deltas):
    sdf, grad, inv_s = out.extras['sdf'][:, 0], out.extras['gradient'][:, 0], out.extras['inv_s'][:, 0]
    alpha = rendering.neus_alpha(sdf, jnp.sum(viewdirs * grad, axis=-1), deltas, inv_s)
    # Clipped below 1 so the optical depth is finite; a transmittance of 1e-6 is opaque for any image.
    return -jnp.log1p(-jnp.minimum(alpha, 1.0 - 1e-6)), {'sdf_gradient': grad}

  def report(self, variables):
    """The grid's fill (OccupancySampler's) and NeuS's sharpness: inv_s, 1 / the logistic's standard
    deviation in world units (a surface about 1 / inv_s thick; it grows as the surface settles)."""
    report = super().report(variables)
    field = variables['params'].get('fine', {})
    if 'variance' in field:  # fields.sdf's parameter (another SDF field may keep its sharpness otherwise)
      report['inv_s'] = round(float(min(max(jnp.exp(10.0 * float(field['variance'])), 1e-6), 1e6)), 1)
    return report

  def extra_extras(self, keys):
    """The SDF's gradient at free_points uniform random points of the box (one draw per batch, from
    its first ray's key), marked valid."""
    if not self.free_points:
      return {}
    lo, hi = self.box
    points = jax.random.uniform(jax.random.fold_in(keys[0], 7), (self.free_points, 1, 3), jnp.float32, lo, hi)
    cond = Conditioning(camera=jnp.full((self.free_points,), NO_CAMERA, jnp.int32))
    out = self.fine(points, jnp.zeros((self.free_points, 3), jnp.float32), cond)
    return {'free_gradient': out.extras['gradient'][:, 0]}
