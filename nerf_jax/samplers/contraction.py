"""Scene contraction as a feature of the samplers that support it (Sampler.CONTRACTS: 'proposal',
'occupancy'): its keys, registered with SAMPLERS.share, and their rule.

With model.contraction='linf' a sampler queries its fields (and keeps its grid) at sampling.contract's
points, in [-2, 2]^3: the cube of half-side model.contract_radius around the origin kept as it is
(scaled), everything beyond squeezed into the shell, infinity onto its surface; rays run from near
to FAR_RADII radii, spaced by nerfacto's piecewise spacing (sampling.spacing_to_distance). Densities
stay per world unit (docs/conventions.md, "Unbounded scenes").
"""

from nerf_jax import config_rules
from nerf_jax.errors import ConfigError

CONTRACTIONS = ('none', 'linf')
CONTRACTED_BOX = (-2.0, 2.0)  # where sampling.contract puts every point
FAR_RADII = 1000.0  # rays end this many contract_radius away (|y|_inf within 1e-3 of 2)

KEYS = {
    'model.contraction': ('none', "samplers that support it ('proposal', 'occupancy'): 'linf' contracts "
                                  "space (unbounded scenes; model.box must then be (-2, 2)), 'none' samples "
                                  "model.box's world"),
    # The loaders normalise the world: COLMAP's inward captures put the cameras ~4 from the origin
    # (datasets.colmap.CAMERA_RADIUS), so 4 keeps them and the object inside the linear cube.
    'model.contract_radius': (4.0, "with model.contraction='linf': half the side of the cube around the "
                                   f"origin kept linear (world units); rays end {FAR_RADII:g} times this far"),
}
SAFE = ()


def check(config, contracts):
  """The rule: a known contraction, a positive radius, and where it is on, a sampler that supports it
  (contracts: bool, the chosen sampler's Sampler.CONTRACTS), no NDC and the fields' box (-2, 2)."""
  problems, m = [], config.model
  config_rules.one_of(problems, config, 'model.contraction', CONTRACTIONS)
  config_rules.in_range(problems, config, 'model.contract_radius', 0, low_open=True)
  if problems or m.contraction == 'none':
    return problems
  if not contracts:
    problems.append(f"model.contraction={m.contraction!r} needs a sampler that contracts space: "
                    f"model.sampler='proposal' or 'occupancy' (got {m.sampler!r})")
  if config.data.ndc:
    problems.append(f"model.contraction={m.contraction!r} and data.ndc=True both map an unbounded scene into "
                    f"a bounded one: choose one (forward-facing captures: either; 360-degree ones: "
                    f"contraction, data.ndc=False)")
  if tuple(m.box) != CONTRACTED_BOX:
    problems.append(f"model.contraction={m.contraction!r} puts every point in {CONTRACTED_BOX}^3, which the "
                    f"fields must cover: set model.box={CONTRACTED_BOX} (got {tuple(m.box)})")
  return problems


def contraction_radius(model_config, near):
  """model.contract_radius where contraction is on, else None; ConfigError where the rays' near bound
  (float, world units) is not inside it: the piecewise spacing runs linearly from near out to the
  radius, and would run backwards."""
  if model_config.contraction == 'none':
    return None
  r = float(model_config.contract_radius)
  if near >= r:
    raise ConfigError(f'model.contraction={model_config.contraction!r}: the rays start at near={near:.3g}, '
                      f'beyond model.contract_radius={r:g}, where their spacing turns from linear to '
                      f'disparity: raise model.contract_radius above {near:.3g} or lower the near bound '
                      f'(data.near, or data.bounds)')
  return r
