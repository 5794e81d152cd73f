"""Samplers by name: model.sampler picks one from SAMPLERS.

A sampler decides where along each ray its fields are queried and how the samples become renders
(samplers.base.Sampler: the contract, with what it renders, the state it keeps and the field outputs it
needs). A new one is a file of its own with a Sampler subclass, plus one line below with the config
keys and the rule the file owns (docs/extending.md).
"""

from nerf_jax.registry import Registry
from nerf_jax.samplers import contraction, hierarchical, neus, occupancy, proposal
from nerf_jax.samplers.base import Sampler, check_field

SAMPLERS = Registry('sampler', 'model.sampler')
SAMPLERS.register('hierarchical', hierarchical.HierarchicalSampler, keys=hierarchical.KEYS,
                  check=hierarchical.check)
SAMPLERS.register('occupancy', occupancy.OccupancySampler, keys=occupancy.KEYS, check=occupancy.check,
                  safe=occupancy.SAFE)
SAMPLERS.register('neus', neus.NeusSampler, keys=neus.KEYS, check=neus.check)
SAMPLERS.register('proposal', proposal.ProposalSampler, keys=proposal.KEYS, check=proposal.check)


def _check_contraction(config):
  sampler = config.model.sampler
  return contraction.check(config, sampler in SAMPLERS and SAMPLERS.get(sampler).CONTRACTS)


SAMPLERS.share('contraction', keys=contraction.KEYS, check=_check_contraction, safe=contraction.SAFE)

__all__ = ['SAMPLERS', 'Sampler', 'check_field']
