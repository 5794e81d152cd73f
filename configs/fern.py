"""NeRF on LLFF's fern with the paper's settings (NeRF's config_fern.txt; nerf-pytorch's fern.txt is the
same with 64 fine samples; a GPU job).

python main.py --config configs/fern.py --config.data.root=../shared/data/nerf_llff_data
Forward-facing: rays in NDC (near plane 1, samples uniform in NDC depth [0, 1], i.e. in disparity), every
8th image held out as 'test' (0, 8, 16), images_8 (504x378), noise on the raw density against floaters.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.task = 'nerf'
  config.name = 'fern'
  config.data.format = 'llff'
  config.data.root = 'data/nerf_llff_data'
  config.data.scene = 'fern'
  config.data.factor = 8  # images_8/: 504x378
  config.data.llffhold = 8
  config.data.ndc = True
  config.data.white_bkgd = False  # photos: no alpha, nothing to composite
  config.data.batching = 'all_images'  # nerf-pytorch batches rays over every training image for LLFF
  config.model.width = 256
  config.model.depth = 8
  config.model.num_coarse = 64
  config.model.num_fine = 128
  config.model.density_noise = 1.0  # raw_noise_std
  config.model.dtype = 'auto'  # configs/lego.py says why
  config.train.steps = 200_000
  config.train.batch_size = 1024
  config.train.lr = 5e-4
  config.train.lr_decay_steps = 250_000  # nerf-pytorch's lrate_decay 250 (thousand steps) for fern
  config.train.lr_decay_rate = 0.1
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.eval.split = 'test'
  config.eval.views = (0, -1, 1)  # the held-out images 0, 8, 16
  config.eval.train_split = 'test'
  config.eval.train_views = (0, -1, 1)
  config.eval.chunk = 2048
  config.render.frames = 120  # NeRF's spiral: two turns
  return config
