"""Every config key with its default; the other configs import this and override what they change.

Run: python main.py --config configs/<name>.py [--config.train.lr=1e-3 ...]
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.task = 'img_fit'  # 'img_fit' (pixel (u, v) -> rgb)
  config.name = 'default'  # the run's name; the default workdir is runs/<name>

  config.data = data = ml_collections.ConfigDict()
  data.root = 'data/nerf_synthetic'  # the folder holding scene folders (Blender format)
  data.scene = 'lego'  # a scene folder under root, or a built-in scene ('spheres')
  data.split = 'train'  # the split training reads
  data.view = 0  # img_fit: the view (frame index) to fit
  data.input_ratio = 1.0  # resize factor in (0, 1], area averaging (0.5: 800x800 -> 400x400)
  data.white_bkgd = True  # composite RGBA onto white: rgb * a + (1 - a)

  config.model = model = ml_collections.ConfigDict()
  model.width = 128  # hidden units per layer
  model.depth = 4  # hidden layers
  model.num_freqs = 10  # frequency-encoding frequencies of the input coordinates

  config.train = train = ml_collections.ConfigDict()
  train.steps = 10_000  # total optimisation steps
  train.batch_size = 8192  # pixels (or rays) per step
  train.lr = 5e-4  # Adam's initial learning rate
  train.lr_decay_steps = 10_000  # the learning rate falls by lr_decay_rate over this many steps
  train.lr_decay_rate = 0.1
  train.seed = 0  # parameter initialisation and every step's randomness
  train.log_every = 100  # steps between tensorboard scalars
  train.eval_every = 1000  # steps between evaluations logged to tensorboard (0: only at the end)
  train.checkpoint_every = 1000  # steps between checkpoints (and at the end)
  train.keep_checkpoints = 3  # the newest checkpoints kept; older ones are removed as new ones land
  train.resume = True  # continue from the workdir's latest checkpoint (False: refuse if one exists)

  config.eval = ml_collections.ConfigDict()
  config.eval.split = 'train'  # the split evaluation renders (img_fit: view data.view of it)
  config.eval.chunk = 16384  # pixels (or rays) per forward pass when rendering whole images
  return config
