"""A NeRF in about a minute: the hash-grid field on the built-in 'spheres' scene (no download).

python main.py --config configs/demo_fast.py && python main.py --config configs/demo_fast.py --mode render
(the README's first command: trains, evaluates, then writes the orbit video runs/demo_fast/render/.)
"""

from configs import lego_fast_cpu


def get_config():
  config = lego_fast_cpu.get_config()
  config.name = 'demo_fast'
  config.data.root = 'data'
  config.data.scene = 'spheres'
  config.data.input_ratio = 0.5  # 200x200 -> 100x100
  config.model.grid_resolution = 32
  config.model.march_steps = 256
  config.train.steps = 400  # 2 min 27 s for the command; 300 steps of a 2^15 table: 1 min 57 s, 21.75 dB
  config.train.batch_size = 1024
  config.train.lr_decay_steps = 400
  config.train.log_every = 25
  config.train.checkpoint_every = 400
  config.eval.split = 'test'
  config.eval.train_views = (0, -1, 5)  # 2 of the 10 val views
  config.render.frames = 24
  return config
