"""Loss terms of SDF methods (losses.LOSS_TERMS): the eikonal term, which keeps an SDF a distance
(|gradient| = 1), and the mask term, which matches each ray's opacity to the image's alpha."""

import jax.numpy as jnp

from nerf_jax import config_rules

EIKONAL_KEYS = {'loss.eikonal_weight': (0.1, "'eikonal' term: weight of the mean (|SDF gradient| - 1)^2")}
MASK_KEYS = {'loss.mask_weight': (0.1, "'mask' term: weight of the binary cross-entropy of opacity against "
                                       "alpha")}


def check_eikonal(config):
  problems = []
  config_rules.in_range(problems, config, 'loss.eikonal_weight', 0)
  return problems


def check_mask(config):
  problems = []
  config_rules.in_range(problems, config, 'loss.mask_weight', 0)
  if not config.data.random_bkgd:  # the batch's alphas come with the random background (SceneTask)
    problems.append("loss.terms has 'mask', which needs the images' alpha: set data.random_bkgd=True "
                    "(scenes with alpha only)")
  return problems


def _norm(g):
  """|g| over the last axis with a finite gradient at g = 0 (a flat SDF): float32 [..., 3] -> [...]."""
  return jnp.sqrt(jnp.sum(g ** 2, axis=-1) + 1e-12)


def eikonal(loss_config):
  """weight * mean (|g| - 1)^2 over the shown render's extras 'sdf_gradient' (where 'sample_valid')
  and 'free_gradient' (every row), pooled."""
  weight = loss_config.eikonal_weight

  def term(renders, batch, step):
    """extras float32 [N, 3] (+ bool [N]) and [M, 3] -> float32 []."""
    del batch, step
    extras = list(renders.values())[-1].extras
    error = (_norm(extras['sdf_gradient']) - 1.0) ** 2
    valid = extras.get('sample_valid', jnp.ones(error.shape, bool))
    total, count = jnp.sum(jnp.where(valid, error, 0.0)), jnp.sum(valid)
    if 'free_gradient' in extras:
      total = total + jnp.sum((_norm(extras['free_gradient']) - 1.0) ** 2)
      count = count + extras['free_gradient'].shape[0]
    return weight * total / jnp.maximum(count, 1)

  return term


def mask(loss_config):
  """weight * the mean binary cross-entropy of the shown render's acc [B] against batch['alpha'] [B],
  over the rays it rendered completely."""
  weight = loss_config.mask_weight

  def term(renders, batch, step):
    del step
    render = list(renders.values())[-1]
    acc, alpha = jnp.clip(render.acc, 1e-4, 1.0 - 1e-4), batch['alpha']
    entropy = -(alpha * jnp.log(acc) + (1.0 - alpha) * jnp.log(1.0 - acc))
    if render.complete is None:
      return weight * jnp.mean(entropy)
    # A ray a sampler's budget left incomplete has a partial opacity: out, as from the photometric loss.
    return weight * jnp.sum(jnp.where(render.complete, entropy, 0.0)) / jnp.maximum(jnp.sum(render.complete), 1)

  return term
