"""configs/fern_fast.py sized for 2 CPU cores: 252x189 images in contracted space, 8 hash levels of 4
features, 64 and 32 proposal samples for 24 of the field, 1,024 rays a step.

python main.py --config configs/fern_fast_cpu.py --config.data.root=../shared/data/nerf_llff_data
python main.py --config configs/fern_fast_cpu.py --config.data.root=../shared/data/nerf_llff_data --mode evaluate
"""

from configs import fern_fast


def get_config():
  config = fern_fast.get_config()
  config.name = 'fern_fast_cpu'
  cpu_sizes(config, steps=5000)
  config.model.hash_table_log2 = 17
  config.model.hash_finest = 512
  config.model.field_samples = 24
  return config


def cpu_sizes(config, steps):
  """The 2-core CPU sizes of a fern_fast.nerfacto config (configs/colmap_fast_cpu.py's too): the images
  halved, 8 hash levels of 4 features, proposals of 64 and 32 samples on small grids, 1,024 rays a
  step for `steps` steps, only the final evaluation. Returns config."""
  config.data.input_ratio = 0.5  # fern's images_8 halved: 252x189
  # lego_fast_cpu's table: 8 levels of 4 features encode in half the time of 16 of 2 on a CPU.
  config.model.hash_levels = 8
  config.model.hash_features = 4
  config.model.proposal_samples = (64, 32)
  config.model.proposal_hash_finest = (64, 128)
  config.model.proposal_hash_table_log2 = 15
  config.train.steps = steps
  config.train.batch_size = 1024
  config.train.lr_decay_steps = steps
  config.train.lr_decay_rate = 0.03
  config.train.log_every = 50
  config.train.eval_every = 0  # only the final evaluation
  config.train.checkpoint_every = 1000
  config.eval.chunk = 4096
  # 512 rays at a time: 1.07x the rays/s of lego_cpu's 128 for this model (benchmarks/run.py eval_real_cpu)
  config.eval.microbatches = 8
  return config
