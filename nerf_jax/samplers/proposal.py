"""mip-NeRF 360's and nerfacto's sampler: small proposal density fields, each resampled by inverse
CDF, say where the shown field is queried; optionally in contracted space, for unbounded scenes.

Along each ray, positions are a normalised spacing s in [0, 1] (sampling.spacing_to_distance): linear
from near to far, or, with contraction, nerfacto's piecewise spacing (linear out to contract_radius,
then linear in disparity out to FAR_RADII radii). Level 0 samples s evenly; each proposal field's
densities at its intervals' midpoints give weights, and the next level's intervals are drawn from that
histogram (sample_pdf, with padding so no region starves); the last level's go to the shown field.
The proposal fields never see colour: they learn only from the interlevel loss term (their weights
must bound the shown field's, interval_losses), which is why the renders carry each level's 'sdist'
and weights as extras.

Contraction (model.contraction='linf', mip-NeRF 360's in its L-infinity form, sampling.contract): every
field sees points mapped into [-2, 2]^3, the cube of side 2 * contract_radius around the origin kept
as it is (scaled), everything beyond squeezed into the shell; so the hash grids spend their resolution
near the cameras and still cover the horizon. NDC scenes (data.ndc) are bounded already and are
sampled linearly in NDC depth; the two together are refused.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nerf_jax import config_rules, rendering, sampling
from nerf_jax.fields.density import DensityField
from nerf_jax.fields.hashgrid import HashEncoding
from nerf_jax.fields.layers import compute_dtype
from nerf_jax.samplers.contraction import FAR_RADII, contraction_radius
from nerf_jax.samplers.base import Sampler
from nerf_jax.types import Conditioning


KEYS = {
    # nerfacto's GPU defaults: (256, 96) and 48.
    'model.proposal_samples': ((256, 96), "'proposal' sampler: samples per ray of each proposal field, in "
                                          "order (one field each)"),
    'model.field_samples': (48, "'proposal' sampler: samples per ray of the shown field"),
    'model.proposal_width': (16, "'proposal' sampler: hidden units of each proposal field's MLP"),
    'model.proposal_hash_levels': (5, "'proposal' sampler: hash-grid levels of each proposal field"),
    'model.proposal_hash_table_log2': (17, "'proposal' sampler: log2 of each proposal level's table rows"),
    'model.proposal_hash_finest': ((128, 256), "'proposal' sampler: finest cells per side of each "
                                               "proposal field (coarsest: model.hash_coarsest)"),
    # nerfstudio's histogram_padding: with 0.01 over 96 bins about half of the next level's samples
    # spread evenly, so a surface the proposal missed is still found.
    'model.proposal_padding': (0.01, "'proposal' sampler: added to each bin's weight before resampling"),
}


def check(config):
  problems, m = [], config.model
  if tuple(m.proposal_samples):  # () is allowed: the field's samples evenly in s, no proposal (an ablation)
    config_rules.positive_ints(problems, config, 'model.proposal_samples')
  config_rules.in_range(problems, config, 'model.field_samples', 1, integer=True)
  config_rules.in_range(problems, config, 'model.proposal_width', 1, integer=True)
  config_rules.in_range(problems, config, 'model.proposal_hash_levels', 1, integer=True)
  config_rules.in_range(problems, config, 'model.proposal_hash_table_log2', 4, 24, integer=True)
  if tuple(m.proposal_hash_finest):
    config_rules.positive_ints(problems, config, 'model.proposal_hash_finest')
  config_rules.in_range(problems, config, 'model.proposal_padding', 0)
  if problems:
    return problems
  if len(m.proposal_hash_finest) != len(m.proposal_samples):
    problems.append(f'model.proposal_hash_finest={tuple(m.proposal_hash_finest)} needs one resolution per '
                    f'proposal field, as model.proposal_samples={tuple(m.proposal_samples)} has')
  # A proposal field is the cheap guess of where matter is: one as fine as the shown field buys nothing.
  if m.encoding == 'hashgrid' and m.proposal_hash_finest and (max(m.proposal_hash_finest) > m.hash_finest
                                   or m.proposal_hash_table_log2 > m.hash_table_log2):
    problems.append(f'the proposal fields are larger than the shown field (model.proposal_hash_finest='
                    f'{tuple(m.proposal_hash_finest)} against model.hash_finest={m.hash_finest}, '
                    f'model.proposal_hash_table_log2={m.proposal_hash_table_log2} against '
                    f'model.hash_table_log2={m.hash_table_log2}): make them coarser')
  if m.get('density_noise', 0.0) > 0:  # the hierarchical sampler's key
    problems.append(f"model.sampler='proposal' adds no density noise: set model.density_noise=0 "
                    f"(got {m.density_noise})")
  if config.data.lindisp:
    problems.append("model.sampler='proposal' spaces its samples itself (linear, or piecewise with "
                    "model.contraction='linf'): set data.lindisp=False")
  return problems


class ProposalSampler(Sampler):
  """Proposal fields resampled by inverse CDF, then the shown field (module docstring).

  fine: the shown field (named as the other samplers' shown field); proposals: DensityFields, one per
  entry of proposal_samples; near, far: the rays' bounds (with contraction, far is FAR_RADII radii);
  radius: the contraction's, or None (no contraction, linear spacing); it is also where the piecewise
  spacing turns from linear to disparity. Renders 'fine' with extras 'sdist' float32 [..., N + 1] (its
  intervals in s) and, per proposal level i, 'proposal_sdist_<i>' and 'proposal_weights_<i>'.
  """
  RENDERS = ('fine',)
  CONTRACTS = True
  fine: nn.Module = None
  proposals: tuple = ()
  proposal_samples: tuple = (256, 96)
  field_samples: int = 48
  near: float = 2.0
  far: float = 6.0
  radius: float = None
  padding: float = 0.01
  white_bkgd: bool = True

  @classmethod
  def build(cls, data_config, model_config, near, far, make_field):
    m = model_config
    radius = contraction_radius(m, near)
    box = tuple(m.box)  # (-2, 2) with contraction (its rule)
    proposals = tuple(
        DensityField(encoding=HashEncoding(num_levels=m.proposal_hash_levels, features=2,
                                           table_log2=m.proposal_hash_table_log2, coarsest=m.hash_coarsest,
                                           finest=finest, box=box),
                     width=m.proposal_width, box=box, dtype=compute_dtype(m.dtype))
        for finest in m.proposal_hash_finest)
    return cls(fine=make_field(), proposals=proposals, proposal_samples=tuple(m.proposal_samples),
               field_samples=m.field_samples, near=near,
               far=far if radius is None else FAR_RADII * radius,
               radius=radius, padding=m.proposal_padding, white_bkgd=data_config.white_bkgd)

  def _query(self, field, points, viewdirs, cond):
    if self.radius is not None:
      points = sampling.contract(points, self.radius)
    return field(points, viewdirs, cond)

  def field(self, points, viewdirs, cond=None):
    return self._query(self.fine, points, viewdirs, cond)

  def distances(self, s):
    """Distances along the rays (z_vals) of spacings s float32 [...]."""
    return sampling.spacing_to_distance(s, self.near, self.far, self.radius)

  def __call__(self, rays, keys=None, background=None):
    """rays: Rays [...]; keys: uint32 [..., 2] or None (evaluation: each level's quantiles)."""
    batch_shape = rays.origins.shape[:-1]
    counts = (*self.proposal_samples, self.field_samples)
    if keys is not None:
      keys = jnp.vectorize(lambda k: jax.random.split(k, len(counts)), signature='(k)->(n,k)')(keys)
    cond = Conditioning.of(rays)
    # Level 0 draws from one interval covering the ray, weight 1: evenly (jittered while training).
    sdist = jnp.broadcast_to(jnp.array([0.0, 1.0], jnp.float32), (*batch_shape, 2))
    weights = jnp.ones((*batch_shape, 1), jnp.float32)
    extras = {}
    for level, count in enumerate(counts):
      sdist = self._resample(None if keys is None else keys[..., level, :], sdist, weights, count)
      tdist = self.distances(sdist)
      if level == len(self.proposals):
        break
      mids = 0.5 * (tdist[..., 1:] + tdist[..., :-1])  # each interval queried at its middle
      density = self._query(self.proposals[level], sampling.points_along(rays, mids), rays.viewdirs,
                            cond).density
      weights, _ = rendering.weights_from_density(density, tdist[..., :-1], rays.directions, far=tdist[..., -1:])
      extras[f'proposal_sdist_{level}'], extras[f'proposal_weights_{level}'] = sdist, weights
    mids = 0.5 * (tdist[..., 1:] + tdist[..., :-1])
    out = self._query(self.fine, sampling.points_along(rays, mids), rays.viewdirs, cond)
    weights, edges = rendering.weights_from_density(out.density, tdist[..., :-1], rays.directions,
                                                    far=tdist[..., -1:])
    render = rendering.composite(weights, out.rgb, mids, white_bkgd=self.white_bkgd, background=background,
                                 edges=edges, extras={**out.extras, **extras, 'sdist': sdist})
    return {'fine': render}

  def _resample(self, keys, sdist, weights, count):
    """count intervals (count + 1 sorted edges, float32 [..., count + 1]) drawn from the histogram
    weights [..., M] over sdist [..., M + 1] plus padding; keys uint32 [..., 2] (one per ray) or None."""
    padded = weights + self.padding
    if keys is None:
      return sampling.sample_pdf(None, sdist, padded, count + 1)
    return jnp.vectorize(lambda k, b, w: sampling.sample_pdf(k, b, w, count + 1),
                         signature='(k),(m),(n)->(c)')(keys, sdist, padded)
