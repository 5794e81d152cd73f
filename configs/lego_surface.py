"""NeuS on lego at 800x800 (a GPU job): lego_fast's hash grid and 128^3 occupancy grid with an SDF field,
eikonal and mask losses (instant-nsr-pl's NeuS with masks: 20k steps); then a mesh at the SDF's zero level.

python main.py --config configs/lego_surface.py --config.data.root=PATH/TO/nerf_synthetic
"""

from configs import lego_fast


def get_config():
  config = lego_fast.get_config()
  config.name = 'lego_surface'
  config.model.field = 'sdf'
  config.model.sampler = 'neus'
  config.model.dtype = 'float32'
  config.model.sdf_radius = 1.0
  config.model.sdf_depth = 1
  config.model.sdf_features = 15
  config.loss.terms = ('eikonal', 'mask')
  config.mesh.box = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
  config.mesh.resolution = 512
  return config
