"""nerfacto's parts on your own photos (a GPU job): `python -m nerf_jax.sfm PHOTOS --out SCENE`, then
a hash-grid field sampled by two proposal density fields in contracted space, so the background out to
the horizon is part of the scene; nerfacto's sizes.

python main.py --config configs/colmap_fast.py --config.data.root=PARENT_OF_SCENE --config.data.scene=SCENE
configs/colmap_fast_cpu.py is the 2-core CPU version (and what nerf_jax.sfm prints).
Contraction (docs/conventions.md): the cube |x|_inf <= model.contract_radius = 4 around the scene's
centre stays linear, which holds the object and the cameras (the COLMAP loader puts an inward capture's
cameras 4 from the centre); beyond it space is squeezed, infinity onto |y|_inf = 2. Meshes and point
clouds cover the foreground: the cube every camera sees (--config.mesh.box to choose another).
"""

from configs import colmap


def get_config():
  config = colmap.get_config()
  config.name = 'colmap_fast'
  config.data.input_ratio = 1.0
  config.data.batching = 'all_images'
  config.data.bounds = 'scene'  # near from the sparse points; far: the contraction's (1,000 radii)
  config.model.field = 'ngp'
  config.model.encoding = 'hashgrid'
  config.model.dir_encoding = 'sh'
  config.model.sampler = 'proposal'
  config.model.contraction = 'linf'
  config.model.contract_radius = 4.0
  config.model.box = (-2.0, 2.0)  # contracted space
  config.model.hash_levels = 16
  config.model.hash_features = 2
  config.model.hash_table_log2 = 19
  config.model.hash_coarsest = 16
  config.model.hash_finest = 2048
  config.model.width = 64
  config.model.depth = 2
  config.model.proposal_samples = (256, 96)
  config.model.field_samples = 48
  config.model.proposal_hash_finest = (128, 256)
  config.model.proposal_hash_table_log2 = 17
  config.model.dtype = 'auto'
  config.loss.terms = ('interlevel', 'distortion')
  config.train.steps = 20_000
  config.train.batch_size = 4096
  config.train.lr = 1e-2
  config.train.lr_decay_steps = 20_000
  config.train.lr_decay_rate = 0.01
  config.train.precrop_steps = 0
  config.train.optimizer.b1 = 0.9
  config.train.optimizer.b2 = 0.99
  config.train.optimizer.eps = 1e-15
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.eval.chunk = 8192
  config.pointcloud.foreground = True  # the background spreads out to the horizon
  return config
