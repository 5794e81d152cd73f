"""Image fitting on lego view 0 with a 2-D multiresolution hash grid instead of the frequency encoding.

python main.py --config configs/img_fit_hash.py --config.data.root=../shared/data/nerf_synthetic_400
(the tutorial's "Why a hash grid learns faster" compares it with configs/img_fit.py.)
"""

from configs import img_fit


def get_config():
  config = img_fit.get_config()
  config.name = 'img_fit_hash_lego'
  config.model.encoding = 'hashgrid'
  config.model.box = (0.0, 1.0)  # (u, v) is in the unit square
  config.model.hash_levels = 16
  config.model.hash_features = 2
  config.model.hash_table_log2 = 19  # every level indexed directly at 400x400: no collisions
  config.model.hash_coarsest = 16
  config.model.hash_finest = 512  # past the image's 400 pixels a side: a cell per pixel at the finest
  config.model.width = 64
  config.model.depth = 2
  config.train.steps = 1000
  config.train.batch_size = 16384
  config.train.lr = 1e-2
  config.train.lr_decay_steps = 1000
  config.train.optimizer.b2 = 0.99  # instant-NGP's Adam
  config.train.optimizer.eps = 1e-15
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  return config
