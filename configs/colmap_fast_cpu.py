"""configs/colmap_fast.py sized for 2 CPU cores: what `python -m nerf_jax.sfm` prints for your photos.

python main.py --config configs/colmap_fast_cpu.py --config.data.root=PARENT_OF_SCENE --config.data.scene=SCENE
Images at half what sfm wrote (400 px on the long side of its 800 px default); 8 hash levels of 4
features, 64 and 32 proposal samples for 32 of the field, 1,024 rays a step.
"""

from configs import colmap_fast, fern_fast_cpu


def get_config():
  config = colmap_fast.get_config()
  config.name = 'colmap_fast_cpu'
  fern_fast_cpu.cpu_sizes(config, steps=3000)
  config.model.hash_table_log2 = 18
  config.model.hash_finest = 1024
  config.model.field_samples = 32
  return config
