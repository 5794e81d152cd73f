"""NeRF on lego with the paper's settings (configs/nerf/nerf.yaml of the Learning NeRF framework).

python main.py --config configs/lego.py --config.data.root=PATH/TO/nerf_synthetic --config.data.input_ratio=0.5
(a GPU job: 200k steps of 1024 rays, 64 + 128 samples, the 8x256 MLP.)
"""

from configs import default


def get_config():
  config = default.get_config()
  config.task = 'nerf'
  config.name = 'lego'
  config.data.scene = 'lego'
  config.data.batching = 'single_image'  # the paper's no_batching for Blender scenes
  config.model.width = 256
  config.model.depth = 8
  config.model.num_coarse = 64
  config.model.num_fine = 128
  # Mixed precision where it pays: bfloat16 products, float32 everything else, on a device that multiplies
  # bfloat16 natively; float32 elsewhere, where emulated bfloat16 is slower (nerf_jax/precision.py; the
  # start-up line says which and why). configs/lego_cpu.py, 4,000 steps on 2 CPU cores (AVX-512 BF16):
  # 24.15 dB against float32's 24.17 on val views 0, 10, ..., 90, in 17.4 instead of 27.8 minutes.
  config.model.dtype = 'auto'
  config.train.steps = 200_000
  config.train.batch_size = 1024
  config.train.microbatches = 1  # on a CPU, 8 (128 rays at a time) is 1.3-1.4x faster, same update
  config.train.lr = 5e-4
  config.train.lr_decay_steps = 500_000
  config.train.precrop_steps = 500
  config.train.precrop_frac = 0.5
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  config.eval.split = 'test'
  config.eval.train_split = 'val'
  config.eval.train_views = (0, -1, 25)  # 4 views
  # Rendering memory follows the chunk: 2,048 rays x 192 samples in one pass peak at 2.3 GB resident on
  # a CPU, 4,096 at 3.8 GB; in parts of 128 rays (eval.microbatches=16) 2,048 peak at 0.9 GB
  # (benchmarks/run.py --only render_800). Raise the chunk on a GPU with memory to spare.
  config.eval.chunk = 2048
  config.eval.microbatches = 1  # on a CPU, 16 (128 rays at a time) is 1.3x faster in 40% of the memory
  return config
