"""configs/colmap_fast.py sized for 2 CPU cores: what `python -m nerf_jax.sfm` prints for your photos.

python main.py --config configs/colmap_fast_cpu.py --config.data.root=PARENT_OF_SCENE --config.data.scene=SCENE
Images at half what sfm wrote (400 px on the long side of its 800 px default); 8 hash levels of 4
features, 64 and 32 proposal samples for 32 of the field, 1,024 rays a step.
"""

from configs import colmap_fast


def get_config():
  config = colmap_fast.get_config()
  config.name = 'colmap_fast_cpu'
  config.data.input_ratio = 0.5
  config.model.hash_levels = 8
  config.model.hash_features = 4
  config.model.hash_table_log2 = 18
  config.model.hash_finest = 1024
  config.model.proposal_samples = (64, 32)
  config.model.field_samples = 32
  config.model.proposal_hash_finest = (64, 128)
  config.model.proposal_hash_table_log2 = 15
  config.train.steps = 3000
  config.train.batch_size = 1024
  config.train.lr_decay_steps = 3000
  config.train.lr_decay_rate = 0.03
  config.train.log_every = 50
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  config.eval.chunk = 4096
  return config
