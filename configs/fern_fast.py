"""nerfacto's parts on LLFF's fern (a GPU job): a hash-grid field sampled by two proposal density
fields in contracted space, nerfacto's sizes.

python main.py --config configs/fern_fast.py --config.data.root=PATH/TO/nerf_llff_data
configs/fern_fast_cpu.py is the 2-core CPU version; configs/colmap_fast.py the same parts for captures
of your own. Contraction rather than NDC (which the proposal sampler also takes: data.ndc=True,
model.contraction='none', model.box=(-1.5, 1.5)): on fern at 1,500 steps of fern_fast_cpu, 27.34 dB
against 26.55 in NDC at the same speed (docs/tutorial.md, section 11).
"""

from configs import fern


def get_config():
  config = fern.get_config()
  config.name = 'fern_fast'
  # The LLFF loader puts the nearest depth at 1 / 0.75 (every LLFF scene alike): the linear cube of
  # half-side 2 holds the foreground, the rest (fern's far wall at ~6) is contracted.
  return nerfacto(config, contract_radius=2.0)


def nerfacto(config, contract_radius):
  """nerfacto's parts at its GPU sizes on a scene's config (configs/colmap_fast.py's too): the ngp
  field sampled by two proposal density fields in contracted space (the cube of half-side
  contract_radius kept linear), interlevel and distortion terms, instant-NGP's Adam. Returns config."""
  config.data.ndc = False
  config.data.bounds = 'scene'  # near from the scene's bounds; far: the contraction's (1,000 radii)
  config.model.field = 'ngp'
  config.model.encoding = 'hashgrid'
  config.model.dir_encoding = 'sh'
  config.model.sampler = 'proposal'
  config.model.density_noise = 0.0  # the proposal sampler adds none
  config.model.contraction = 'linf'
  config.model.contract_radius = contract_radius
  config.model.box = (-2.0, 2.0)  # contracted space
  config.model.hash_levels = 16
  config.model.hash_features = 2
  config.model.hash_table_log2 = 19
  config.model.hash_coarsest = 16
  config.model.hash_finest = 2048
  config.model.width = 64  # both MLPs' hidden width
  config.model.depth = 2  # the colour MLP's hidden layers
  config.model.proposal_samples = (256, 96)  # nerfacto's
  config.model.field_samples = 48
  config.model.proposal_hash_finest = (128, 256)
  config.model.proposal_hash_table_log2 = 17
  config.model.dtype = 'auto'
  config.loss.terms = ('interlevel', 'distortion')
  config.train.steps = 20_000
  config.train.batch_size = 4096
  config.train.lr = 1e-2
  config.train.lr_decay_steps = 20_000
  config.train.lr_decay_rate = 0.01  # nerfacto: 1e-2 -> 1e-4
  config.train.optimizer.b1 = 0.9  # instant-NGP's Adam
  config.train.optimizer.b2 = 0.99
  config.train.optimizer.eps = 1e-15
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.eval.chunk = 8192
  return config
