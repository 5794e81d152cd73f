"""NeuS on lego sized for 2 CPU cores: lego_fast_cpu's hash grid and occupancy grid with an SDF field,
eikonal and mask losses; then a mesh at the SDF's zero level.

python main.py --config configs/lego_surface_cpu.py --config.data.root=../shared/data/nerf_synthetic_400
python main.py --config configs/lego_surface_cpu.py --config.data.root=../shared/data/nerf_synthetic_400 --mode mesh
"""

from configs import lego_fast_cpu


def get_config():
  config = lego_fast_cpu.get_config()
  config.name = 'lego_surface_cpu'
  config.data.random_bkgd = True  # the mask loss reads the alphas that come with it
  config.model.field = 'sdf'
  config.model.sampler = 'neus'
  config.model.dtype = 'float32'  # the SDF network is float32 anyway; the colour network is small
  config.model.sdf_radius = 1.0
  config.loss.terms = ('eikonal', 'mask')
  config.train.steps = 2500
  config.train.lr_decay_steps = 2500
  config.mesh.box = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
  return config
