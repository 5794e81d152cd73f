"""The photometric loss of a scene method and its terms, summed: what a NeRF-like task minimises.

renders = {name: RenderResult} of a batch's rays in the sampler's RENDERS order; the photometric loss
is the MSE of each render the sampler names in PHOTOMETRIC against the batch's colours (over the rays a
sampler's budget completed, where it says), and each loss term (losses.LOSS_TERMS) adds its weighted
value. A camera model's penalty is the task's to add (tasks.scene.SceneTask.camera_loss).
"""

import jax.numpy as jnp

from nerf_jax import metrics


def photometric_loss(renders, batch, step, *, photometric, shown, terms):
  """(the loss float32 [], metrics {name: float32 []}).

  renders: {name: RenderResult} with rgb float32 [B, 3] (complete bool [B] or None); batch: the task's,
  with 'rgb' float32 [B, 3]; step: int32 []; photometric: the render names the MSE compares; shown: the
  render evaluation shows; terms: {name: term(renders, batch, step) -> float32 []}. Metrics: 'psnr' of
  the shown render, 'acc' its mean opacity, 'psnr_<name>' of the other photometric renders,
  'rays_complete' where a sampler's budget leaves rays out, 'loss_<term>' each term's value.
  """
  mses = {name: metrics.mse(renders[name].rgb, batch['rgb'], renders[name].complete) for name in photometric}
  total = sum(mses.values())
  render = renders[shown]
  aux = {'psnr': metrics.psnr_from_mse(mses[shown]) if shown in mses else
         metrics.psnr_from_mse(metrics.mse(render.rgb, batch['rgb'], render.complete)),
         'acc': jnp.mean(render.acc)}
  for name, mse in mses.items():
    if name != shown:
      aux[f'psnr_{name}'] = metrics.psnr_from_mse(mse)
  if render.complete is not None:  # the share of the batch's rays the budget trained
    aux['rays_complete'] = jnp.mean(render.complete)
  for name, term in terms.items():
    aux[f'loss_{name}'] = term(renders, batch, step)
    total = total + aux[f'loss_{name}']
  return total, aux
