"""The embedded default: image fitting on the built-in 'spheres' scene, rendered on first use.

python main.py --config configs/demo.py    (no download; 26 s on 2 CPU cores once installed: README)
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = 'demo'
  config.data.root = 'data'
  config.data.scene = 'spheres'
  config.train.steps = 2000
  config.train.lr_decay_steps = 2000
  config.train.batch_size = 4096
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  return config
