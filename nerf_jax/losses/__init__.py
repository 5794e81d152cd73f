"""Loss terms added to a scene method's photometric loss by name: config.loss.terms picks them.

The photometric loss (the MSE of the renders the sampler names in PHOTOMETRIC) is always there; a term
is a regulariser on the renders. A term's file has `build(loss_config) -> term`, with
  term(renders, batch, step) -> float32 []  (jittable; already weighted)
where renders = {name: RenderResult} of the batch's rays in the sampler's RENDERS order (NeRF's
hierarchical sampler: 'coarse', 'fine'; the last is the shown one), batch the task's batch ({'image',
'rows', 'cols', 'rgb', 'keys', ...}), and step the training step (int32 []), so a weight can be annealed.
A RenderResult carries the samples' interval edges and the sampler's and field's extras by name, so
interval losses (distortion) and field losses (eikonal) are terms too. The term registers its keys
(weights, schedule) and what it needs of the renders with its one line:
  LOSS_TERMS.register('name', module.build, keys=module.KEYS, needs=('edges',))
and a sampler that renders no such thing is a ConfigError before the first step. docs/extending.md
works one example through.
"""

from nerf_jax.losses import interval, sdf
from nerf_jax.registry import Registry

LOSS_TERMS = Registry('loss term', 'loss.terms')
LOSS_TERMS.register('eikonal', sdf.eikonal, keys=sdf.EIKONAL_KEYS, check=sdf.check_eikonal,
                    needs=('sdf_gradient',))
LOSS_TERMS.register('mask', sdf.mask, keys=sdf.MASK_KEYS, check=sdf.check_mask)
LOSS_TERMS.register('interlevel', interval.interlevel, keys=interval.INTERLEVEL_KEYS,
                    check=interval.check_interlevel, needs=('sdist', 'proposal_weights_0'))
LOSS_TERMS.register('distortion', interval.distortion, keys=interval.DISTORTION_KEYS,
                    check=interval.check_distortion, needs=('sdist',))
