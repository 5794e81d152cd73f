"""instant-NGP on lego sized for 2 CPU cores: 200x200 images, a smaller table, a coarser grid.

python main.py --config configs/lego_fast_cpu.py --config.data.root=../shared/data/nerf_synthetic_400
(input_ratio 0.5 takes the 400x400 copy to 200x200; with the original 800x800 download use 0.25.)
2026-12-03, 2 CPU cores (AVX-512F, no native bfloat16): 15 min 51 s for the command (`/usr/bin/time -v`,
4,000 steps at 4.47 steps/s and one val view at the end), then 31.74 dB PSNR / 0.968 SSIM on val views
0, 10, ..., 90 at 200x200 (`--mode evaluate --config.eval.split=val --config.eval.views="(0, -1, 10)"`).
The 4,000 steps are what the packed rendering of the occupancy sampler's samples bought (1.25x a step:
benchmarks/run.py --profile --only nerf_fast_cpu); 2,000 steps had given 30.43 dB in 10 min 39 s.
Sizes chosen from short runs, not a sweep: 8 levels of 4 features encode in half the time of 16 of 2 on a
CPU (their PSNR was not compared); 2,048 rays with 16 + 16 samples a ray (65,536 a step).
"""

from configs import lego_fast


def get_config():
  config = lego_fast.get_config()
  config.name = 'lego_fast_cpu'
  config.data.input_ratio = 0.5
  # 8 levels of 4 features, not 16 of 2: the same table memory and MLP input, half the gathered rows,
  # which on a CPU is half the encoding's time (each row costs its memory access, 4 or 8 bytes alike).
  config.model.hash_levels = 8
  config.model.hash_features = 4
  config.model.hash_table_log2 = 17
  config.model.hash_finest = 512
  config.model.grid_resolution = 64
  config.model.march_steps = 512
  config.model.march_samples = (16, 16)
  config.train.steps = 4000
  config.train.batch_size = 2048
  config.train.lr_decay_steps = 4000
  config.train.log_every = 50
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  config.eval.chunk = 4096
  config.eval.train_views = (0, -1, 100)  # the run's closing look: one val view
  return config
