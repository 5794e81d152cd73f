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

from nerf_jax import interval_losses, sdf_losses
from nerf_jax.registry import Registry

LOSS_TERMS = Registry('loss term', 'loss.terms')
LOSS_TERMS.register('eikonal', sdf_losses.eikonal, keys=sdf_losses.EIKONAL_KEYS, check=sdf_losses.check_eikonal,
                    needs=('sdf_gradient',))
LOSS_TERMS.register('mask', sdf_losses.mask, keys=sdf_losses.MASK_KEYS, check=sdf_losses.check_mask)
LOSS_TERMS.register('interlevel', interval_losses.interlevel, keys=interval_losses.INTERLEVEL_KEYS,
                    check=interval_losses.check_interlevel, needs=('sdist', 'proposal_weights_0'))
LOSS_TERMS.register('distortion', interval_losses.distortion, keys=interval_losses.DISTORTION_KEYS,
                    check=interval_losses.check_distortion, needs=('sdist',))
