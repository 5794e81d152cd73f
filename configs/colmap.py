"""NeRF on a COLMAP reconstruction: your own photos after `python -m nerf_jax.sfm PHOTOS --out SCENE`
(or a transforms.json from instant-NGP, nerfstudio, Polycam or Record3D: data.format='auto' reads either).

python main.py --config configs/colmap.py --config.data.root=PARENT_OF_SCENE --config.data.scene=SCENE
Sized for a CPU like configs/lego_cpu.py (images at a quarter of what sfm wrote: 200 px for its 800 px
default). Near and far come from the sparse points seen by each view. A forward-facing capture (all
photos from one side, like LLFF's) trains better in NDC: add --config.data.ndc=True. On a GPU, raise
data.input_ratio and the model (configs/lego.py's 8x256, 64 + 128 samples).
"""

from configs import lego_cpu


def get_config():
  config = lego_cpu.get_config()
  config.name = 'colmap'
  # sparse/ -> colmap, a phone capture's transforms.json -> transforms, poses_bounds.npy -> llff (said
  # at start-up): the real-capture configs read whichever export the scene folder holds.
  config.data.format = 'auto'
  config.data.root = 'data/captures'
  config.data.scene = 'scene'
  config.data.bounds = 'scene'  # near/far from the sparse points, per view (the scene is normalised)
  config.data.llffhold = 8  # every 8th photo held out as 'test'
  config.data.white_bkgd = False  # photos: no alpha
  config.data.input_ratio = 0.25
  config.train.precrop_steps = 0  # a photo's object is not necessarily in the centre crop
  config.eval.split = 'test'
  config.eval.train_split = 'test'
  config.eval.train_views = (0, -1, 1)
  return config
