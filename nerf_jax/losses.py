"""Loss terms added to NeRF's photometric loss by name: config.loss.terms picks them.

The photometric loss (MSE of the coarse and the fine colour) is always there; a term is a regulariser
on the renders. A term's file has `build(loss_config) -> term`, with
  term(renders, batch, step) -> float32 []  (jittable; already weighted)
where renders = {'coarse': RenderResult, 'fine': RenderResult} of the batch's rays, batch the task's
batch ({'rays', 'rgb', 'keys'}), and step the training step (int32 []), so a weight can be annealed.
Its weights and schedule are keys of config.loss. It is registered with one line:
LOSS_TERMS.register('name', module.build). docs/extending.md works one example through.
"""

from nerf_jax.registry import Registry

LOSS_TERMS = Registry('loss term', 'loss.terms')
