"""instant-NGP on lego: a hash-grid field marched through an occupancy grid (a GPU job).

python main.py --config configs/lego_fast.py --config.data.root=PATH/TO/nerf_synthetic
(800x800 from the original download; configs/lego_fast_cpu.py is the 2-core CPU version.)
"""

from configs import lego


def get_config():
  config = lego.get_config()
  config.name = 'lego_fast'
  config.data.input_ratio = 1.0
  config.data.batching = 'all_images'
  config.data.random_bkgd = True  # instant-NGP's random background per ray
  config.model.field = 'ngp'
  config.model.encoding = 'hashgrid'
  config.model.dir_encoding = 'sh'
  config.model.sampler = 'occupancy'
  config.model.box = (-1.5, 1.5)
  config.model.hash_levels = 16
  config.model.hash_features = 2
  config.model.hash_table_log2 = 19
  config.model.hash_coarsest = 16
  config.model.hash_finest = 2048
  config.model.width = 64  # both MLPs' hidden width
  config.model.depth = 2  # the colour MLP's hidden layers
  config.model.dtype = 'float32'
  config.model.grid_resolution = 128
  config.model.march_steps = 1024  # step 0.005 along the box's diagonal of 5.2
  config.model.march_samples = (32, 32)
  config.train.steps = 20_000
  config.train.batch_size = 4096
  config.train.lr = 1e-2
  config.train.lr_decay_steps = 20_000
  config.train.lr_decay_rate = 0.03
  config.train.precrop_steps = 0  # the occupancy grid's warm-up does that job
  config.train.optimizer.b1 = 0.9  # instant-NGP's Adam
  config.train.optimizer.b2 = 0.99
  config.train.optimizer.eps = 1e-15
  config.train.optimizer.weight_decay = 1e-6  # on the MLPs' weights only: not the grid's table, no bias
  config.train.optimizer.weight_decay_pattern = '(density_|colour_|rgb).*kernel'
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.eval.chunk = 8192
  return config
