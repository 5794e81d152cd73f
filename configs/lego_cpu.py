"""NeRF on lego sized for a CPU: 100x100 images, a smaller MLP and fewer samples.

python main.py --config configs/lego_cpu.py --config.data.root=../shared/data/nerf_synthetic_400
(input_ratio 0.25 takes the 400x400 copy to 100x100; with the original 800x800 download use 0.125.)
"""

from configs import lego


def get_config():
  config = lego.get_config()
  config.name = 'lego_cpu'
  config.data.input_ratio = 0.25
  config.data.batching = 'all_images'
  config.model.width = 128
  config.model.depth = 4
  config.model.skip = 2
  config.model.width_view = 64
  config.model.num_coarse = 32
  config.model.num_fine = 64
  config.train.steps = 4000  # 16 min on 2 AVX-512 cores (4.2 steps/s, 4 microbatches), evaluations included
  config.train.batch_size = 512  # more, smaller steps beat fewer large ones within the budget
  # 32 rays (3,072 fine samples) at a time keep each layer's activations and their gradients in the
  # caches: 1.16x the steps/s of 4 parts of 128 (README, Performance, 'Small models on a CPU').
  config.train.microbatches = 16
  config.train.lr = 1e-3
  config.train.lr_decay_steps = 4000  # decays x0.1 over the run
  config.train.precrop_steps = 300
  config.train.log_every = 50
  config.train.eval_every = 1000
  config.train.checkpoint_every = 500
  config.eval.chunk = 4096
  config.eval.microbatches = 32  # 128 rays at a time: 1.65x the rays/s of one 4,096-ray pass (float32)
  return config
