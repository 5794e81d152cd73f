"""NeRF on the built-in 'spheres' scene (rendered on first use): no download, a few minutes on a CPU.

python main.py --config configs/demo_nerf.py
"""

from configs import lego_cpu


def get_config():
  config = lego_cpu.get_config()
  config.name = 'demo_nerf'
  config.data.root = 'data'
  config.data.scene = 'spheres'
  config.data.input_ratio = 0.5  # 200x200 -> 100x100
  config.train.steps = 1000
  config.train.lr_decay_steps = 1000
  config.train.precrop_steps = 100
  config.train.eval_every = 500
  config.eval.split = 'test'
  config.eval.train_views = (0, -1, 5)  # 2 of the 10 val views
  return config
