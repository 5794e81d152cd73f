"""NeRF's MLP marched through an occupancy grid instead of coarse + fine sampling (nerfacc's vanilla
NeRF: 33.69 dB on lego in under an hour on a GPU). A GPU job.

python main.py --config configs/lego_occupancy.py --config.data.root=PATH/TO/nerf_synthetic
"""

from configs import lego


def get_config():
  config = lego.get_config()
  config.name = 'lego_occupancy'
  config.data.input_ratio = 1.0  # 800x800 from the original download
  config.data.batching = 'all_images'
  config.data.random_bkgd = True
  config.model.field = 'mlp'  # the paper's 8x256 MLP with its frequency encodings (configs/lego.py)
  config.model.sampler = 'occupancy'  # one field, no coarse network: the grid finds the surfaces
  config.model.box = (-1.5, 1.5)
  config.model.grid_resolution = 128
  config.model.march_steps = 1024
  config.model.march_samples = (32, 32)
  config.train.steps = 50_000
  config.train.batch_size = 1024
  config.train.lr = 5e-4
  config.train.lr_decay_steps = 50_000
  config.train.precrop_steps = 0  # the grid's warm-up does that job
  config.train.eval_every = 10_000
  config.train.checkpoint_every = 5_000
  return config
