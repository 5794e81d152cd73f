"""A surface in a few minutes: NeuS (an SDF field on a hash grid, marched through an occupancy grid) on
the built-in 'spheres' scene (no download), then a mesh at the SDF's zero level.

python main.py --config configs/demo_surface.py && python main.py --config configs/demo_surface.py --mode mesh
"""

from configs import demo_fast


def get_config():
  config = demo_fast.get_config()
  config.name = 'demo_surface'
  config.data.random_bkgd = True  # the mask loss reads the alphas that come with it
  config.model.field = 'sdf'
  config.model.sampler = 'neus'
  config.model.box = (-1.2, 1.2)
  config.model.dtype = 'float32'  # the SDF network is float32 anyway; the colour network is small
  config.model.sdf_radius = 0.8
  config.model.grid_resolution = 32
  config.model.march_steps = 256
  config.loss.terms = ('eikonal', 'mask')
  config.train.steps = 1000
  config.train.lr_decay_steps = 1000
  config.train.checkpoint_every = 1000
  config.mesh.box = (-1.2, -1.2, -1.2, 1.2, 1.2, 1.2)
  return config
