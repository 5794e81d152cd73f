"""Image fitting on lego view 0, as the Learning NeRF framework's img_fit/lego_view0.

python main.py --config configs/img_fit.py --config.data.root=../shared/data/nerf_synthetic_400
(With the original 800x800 download, add --config.data.input_ratio=0.5 for the same 400x400 image.)
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = 'img_fit_lego'
  config.data.scene = 'lego'
  config.data.view = 0
  return config
