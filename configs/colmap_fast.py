"""nerfacto's parts on your own photos (a GPU job): `python -m nerf_jax.sfm PHOTOS --out SCENE`, then
a hash-grid field sampled by two proposal density fields in contracted space, so the background out to
the horizon is part of the scene; nerfacto's sizes.

python main.py --config configs/colmap_fast.py --config.data.root=PARENT_OF_SCENE --config.data.scene=SCENE
configs/colmap_fast_cpu.py is the 2-core CPU version (and what nerf_jax.sfm prints).
Contraction (docs/conventions.md): the cube |x|_inf <= model.contract_radius = 4 around the scene's
centre stays linear, which holds the object and the cameras (the COLMAP loader puts an inward capture's
cameras 4 from the centre); beyond it space is squeezed, infinity onto |y|_inf = 2. Meshes and point
clouds cover the foreground: the cube every camera sees (--config.mesh.box to choose another).
"""

from configs import colmap, fern_fast


def get_config():
  config = colmap.get_config()
  config.name = 'colmap_fast'
  config.data.input_ratio = 1.0
  config.data.batching = 'all_images'
  # The COLMAP loader puts an inward capture's cameras 4 from the centre: the linear cube holds them.
  fern_fast.nerfacto(config, contract_radius=4.0)
  config.pointcloud.foreground = True  # the background spreads out to the horizon
  return config
