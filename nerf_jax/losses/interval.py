"""Loss terms on the intervals a ray's samples stand for (losses.LOSS_TERMS), from mip-NeRF 360:
the interlevel term, which teaches proposal fields to bound the field's weights, and the distortion
term, which pulls each ray's weights into one compact interval (against floaters and background
haze). Both read the spacing s in [0, 1] of the intervals (sampling.spacing_to_distance: scale-free,
so one weight serves every scene), which a sampler gives as the extra 'sdist' (samplers.proposal).

The functions without a config are pure (jax only); `interlevel` and `distortion` build the terms.
"""

import jax
import jax.numpy as jnp

from nerf_jax import config_rules

INTERLEVEL_KEYS = {
    'loss.interlevel_weight': (1.0, "'interlevel' term: weight of mip-NeRF 360's proposal loss (the proposal "
                                    "weights must bound the field's)"),
}
DISTORTION_KEYS = {
    # nerfacto's 0.002; Zip-NeRF's 0.005. Larger values flatten thin structures.
    'loss.distortion_weight': (0.002, "'distortion' term: weight of mip-NeRF 360's distortion loss on the "
                                      "shown render's weights"),
}
EPS = 1e-7  # mip-NeRF 360's: keeps the interlevel term finite where the field's weight is 0


def check_interlevel(config):
  problems = []
  config_rules.in_range(problems, config, 'loss.interlevel_weight', 0)
  return problems


def check_distortion(config):
  problems = []
  config_rules.in_range(problems, config, 'loss.distortion_weight', 0)
  return problems


def outer_bound(edges, env_edges, env_weights):
  """For each interval of `edges`, the summed weight of the envelope's intervals that overlap it: the
  most weight a histogram bounded by the envelope may put there (mip-NeRF 360, eq. 12).

  edges: float32 [..., N + 1] sorted; env_edges: float32 [..., M + 1] sorted; env_weights: [..., M] >= 0
  returns float32 [..., N]
  """
  cumulative = jnp.concatenate([jnp.zeros_like(env_weights[..., :1]), jnp.cumsum(env_weights, axis=-1)], -1)
  search = lambda side: jnp.vectorize(lambda a, v: jnp.searchsorted(a, v, side=side, method='compare_all'),
                                      signature='(m),(n)->(n)')
  # Envelope interval j overlaps [a, b] when env_edges[j + 1] > a and env_edges[j] < b.
  first = search('right')(env_edges[..., 1:], edges[..., :-1])  # the first j with env_edges[j + 1] > a
  stop = search('left')(env_edges[..., :-1], edges[..., 1:])  # one past the last j with env_edges[j] < b
  total = jnp.take_along_axis(cumulative, stop, -1) - jnp.take_along_axis(cumulative, first, -1)
  return jnp.maximum(total, 0.0)


def interlevel_loss(edges, weights, env_edges, env_weights):
  """mip-NeRF 360's proposal loss for one proposal level: sum over the field's intervals of
  max(0, w - bound)^2 / (w + EPS), mean over rays. Only the envelope learns from it: the field's
  edges and weights are held fixed (its weights are what the proposal must learn to bound).

  edges: float32 [R, N + 1]; weights: [R, N]; env_edges: [R, M + 1]; env_weights: [R, M] -> float32 []
  """
  edges, weights = jax.lax.stop_gradient(edges), jax.lax.stop_gradient(weights)
  bound = outer_bound(edges, jax.lax.stop_gradient(env_edges), env_weights)
  return jnp.mean(jnp.sum(jnp.maximum(weights - bound, 0.0) ** 2 / (weights + EPS), axis=-1))


def distortion_loss(edges, weights):
  """mip-NeRF 360's distortion loss, sum_ij w_i w_j |m_i - m_j| + sum_i w_i^2 (s_i+1 - s_i) / 3 (m: the
  intervals' midpoints), in linear time from cumulative sums; mean over rays.

  edges: float32 [R, N + 1] sorted; weights: float32 [R, N] -> float32 []
  """
  mids = 0.5 * (edges[..., 1:] + edges[..., :-1])
  # For sorted midpoints, sum_ij w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_<i - (wm)_<i), W_<i and
  # (wm)_<i the exclusive cumulative sums of w and w m.
  before = jnp.cumsum(weights, axis=-1) - weights
  weighted_before = jnp.cumsum(weights * mids, axis=-1) - weights * mids
  inter = 2.0 * jnp.sum(weights * (mids * before - weighted_before), axis=-1)
  intra = jnp.sum(weights ** 2 * (edges[..., 1:] - edges[..., :-1]), axis=-1) / 3.0
  return jnp.mean(inter + intra)


def _flat(x, trailing):
  return x.reshape(-1, *x.shape[x.ndim - trailing:])


def interlevel(loss_config):
  """weight * the sum over proposal levels of interlevel_loss between the shown render's 'sdist' and
  weights and each level's 'proposal_sdist_<i>' and 'proposal_weights_<i>' extras."""
  weight = loss_config.interlevel_weight

  def term(renders, batch, step):
    del batch, step
    render = list(renders.values())[-1]
    extras = render.extras
    edges, weights = _flat(extras['sdist'], 1), _flat(render.weights, 1)
    total = 0.0
    level = 0
    while f'proposal_weights_{level}' in extras:
      total = total + interlevel_loss(edges, weights, _flat(extras[f'proposal_sdist_{level}'], 1),
                                      _flat(extras[f'proposal_weights_{level}'], 1))
      level += 1
    return weight * total

  return term


def distortion(loss_config):
  """weight * distortion_loss of the shown render's weights over its 'sdist' intervals."""
  weight = loss_config.distortion_weight

  def term(renders, batch, step):
    del batch, step
    render = list(renders.values())[-1]
    return weight * distortion_loss(_flat(render.extras['sdist'], 1), _flat(render.weights, 1))

  return term
