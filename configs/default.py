"""Every config key with its default; the other configs import this and override what they change.

The keys below are the shared ones. Each plug-in (a sampler, a field, an encoding, a loss term, ...)
owns its own keys, declared with their defaults and comments in its file and registered with it; the
last line adds them (nerf_jax.plugins.add_defaults); the comments above it list them all, generated from
the plug-ins by `python -m nerf_jax.plugins --write` (tests/test_configs.py checks they are current).

Run: python main.py --config configs/<name>.py [--config.train.lr=1e-3 ...]
"""

import ml_collections

from nerf_jax import plugins


def get_config():
  config = ml_collections.ConfigDict()
  config.task = 'img_fit'  # 'img_fit' (pixel (u, v) -> rgb) or 'nerf'
  config.name = 'default'  # the run's name; the default workdir is runs/<name>

  config.data = data = ml_collections.ConfigDict()
  data.format = 'blender'  # the scene's format: datasets.FORMATS ('blender', 'llff', 'colmap', 'transforms', or 'auto': detected)
  data.root = 'data/nerf_synthetic'  # the folder holding scene folders
  data.scene = 'lego'  # a scene folder under root, or a built-in scene ('spheres')
  data.split = 'train'  # the split training reads
  data.view = 0  # img_fit: the view (frame index) to fit
  data.input_ratio = 1.0  # resize factor in (0, 1], area averaging (0.5: 800x800 -> 400x400)
  data.white_bkgd = True  # composite RGBA onto white: rgb * a + (1 - a)
  data.near = 2.0  # nerf: ray samples start here (Blender scenes: cameras ~4 from the origin)
  data.far = 6.0  # nerf: and end here
  data.batching = 'single_image'  # nerf: rays of a step from one random image, or 'all_images'
  # nerf: where data.near / data.far come from: 'config' (the two keys above) or 'scene' (the loader's
  # per-view bounds: LLFF's poses_bounds.npy, COLMAP's sparse points; the closest near, the farthest far)
  data.bounds = 'config'
  # Real captures (llff, colmap formats):
  data.factor = 1  # read images_<factor>/ (LLFF's downsampled copies; 1: images/), scaling the cameras
  data.llffhold = 8  # every llffhold-th image (0, 8, 16, ...) is split 'test', the rest 'train' (0: all train)
  data.ndc = False  # nerf, forward-facing scenes: sample in normalised device coordinates (near plane 1)
  data.lindisp = False  # nerf: samples linear in inverse depth (disparity) rather than in depth
  # nerf, scenes with alpha: while training, each ray's target is composited onto a random colour (and
  # so is its render) instead of white, so the field cannot paint the background into the object
  data.random_bkgd = False

  config.model = model = ml_collections.ConfigDict()
  model.field = 'mlp'  # nerf: the field (point, direction) -> (rgb, density): fields.FIELDS ('mlp', 'ngp')
  model.encoding = 'frequency'  # of points (nerf) and of (u, v) (img_fit): fields.ENCODINGS ('hashgrid')
  model.dir_encoding = 'frequency'  # nerf: of view directions: fields.ENCODINGS ('sh')
  model.width = 128  # hidden units per layer
  model.depth = 4  # hidden layers
  # The layers' matrix products: 'float32', 'bfloat16' (mixed precision: bfloat16 operands, float32
  # sums; parameters, gradients, encoding and volume rendering stay float32) or 'auto': bfloat16 where
  # the device multiplies it natively (avx512_bf16 / amx_bf16 CPUs, Ampere+ GPUs, TPUs), float32 elsewhere,
  # said at start-up; a resumed run keeps its dtype. NeRF configs use 'auto' (configs/lego.py says why);
  # image fitting stays float32: no faster in bfloat16 on a CPU.
  model.dtype = 'float32'
  # nerf: where the field is queried: samplers.SAMPLERS, 'hierarchical' (coarse + fine fields, NeRF),
  # 'occupancy' (one field at fixed steps through the cells an occupancy grid marks occupied, instant-NGP),
  # 'proposal' (proposal density fields resampled by inverse CDF, optionally in contracted space: nerfacto)
  # or 'neus' (an SDF on the occupancy grid)
  model.sampler = 'hierarchical'
  # nerf: how the training cameras' poses reach the rays: camera_models.CAMERA_MODELS ('fixed': as given;
  # 'refine': per-view rotation and translation deltas learned with the fields, nerfacto's)
  model.camera = 'fixed'
  # The cube [lo, hi]^3 the hash grid, the 'ngp' field and the occupancy grid cover (image fitting:
  # the (u, v) square, (0, 1)). Blender scenes fit in (-1.5, 1.5).
  model.box = (-1.5, 1.5)
  # Each plug-in's keys (hash_*, sh_degree, geo_features, grid_*, march_*, num_coarse, ...) come from
  # its file: see the last line.

  config.train = train = ml_collections.ConfigDict()
  train.steps = 10_000  # total optimisation steps
  train.batch_size = 8192  # pixels (or rays) per step
  train.microbatches = 1  # split each step's batch into this many parts (same update, less memory)
  train.lr = 5e-4  # the initial learning rate
  train.lr_decay_steps = 10_000  # the learning rate falls by lr_decay_rate over this many steps
  train.lr_decay_rate = 0.1
  train.seed = 0  # parameter initialisation and every step's randomness
  train.log_every = 100  # steps between tensorboard scalars
  train.progress_every_s = 30.0  # output that is not a terminal: a progress line this often (seconds)
  train.eval_every = 1000  # steps between evaluations logged to tensorboard (0: only at the end)
  train.checkpoint_every = 1000  # steps between checkpoints (and at the end)
  train.keep_checkpoints = 3  # the newest checkpoints kept; older ones are removed as new ones land
  train.resume = True  # continue from the workdir's latest checkpoint (False: refuse if one exists)
  # The checkpoint to resume, evaluate, render or view: 0 the newest that restores (a damaged one is
  # named and skipped), N exactly step N
  train.resume_step = 0
  # Serve the live viewer (config.view, optional extra requirements-viewer.txt) while training: the
  # browser sees the scene as it learns; the training's numbers are the same with it as without
  train.viewer = False
  train.precrop_steps = 0  # nerf: the first steps draw rays from the central crop only
  train.precrop_frac = 0.5  # nerf: the crop's share of each side
  # The optimiser (optim.make_optimizer): clipping -> name -> weight decay -> the learning rate.
  train.optimizer = optimizer = ml_collections.ConfigDict()
  optimizer.name = 'adam'  # optim.OPTIMIZERS
  optimizer.b1 = 0.9  # Adam's decay of the first moment
  optimizer.b2 = 0.999  # ... and of the second
  optimizer.eps = 1e-8  # ... added to the second moment's root
  optimizer.clip_norm = 0.0  # clip gradients to this global norm first (0: off)
  optimizer.clip_value = 0.0  # clip each gradient entry to [-v, v] (0: off)
  optimizer.weight_decay = 0.0  # decoupled weight decay, AdamW-style (0: off)
  optimizer.weight_decay_pattern = ''  # ... on the parameters whose path matches this regex (empty: all)
  # Parameter groups with their own learning rate: ((regex on the parameter path, lr scale[, warm-up
  # steps]), ...), e.g. (('encoding', 10.0),) for a grid's tables at 10x the rate of the MLP's weights;
  # a warm-up ramps the group's rate from 0 over that many steps.
  optimizer.groups = ()

  # Terms added to NeRF's photometric loss (losses.LOSS_TERMS), each with its keys in this section.
  config.loss = ml_collections.ConfigDict()
  config.loss.terms = ()  # names of loss terms, e.g. ('opacity',) after docs/extending.md

  config.eval = ml_collections.ConfigDict()
  config.eval.split = 'train'  # --mode evaluate renders this split (img_fit: view data.view of it)
  config.eval.views = (0, -1, 1)  # [start, stop, step] of its views; stop -1 = through the last
  config.eval.train_split = 'train'  # evaluation while training and at its end: this split ...
  config.eval.train_views = (0, -1, 1)  # ... and these of its views
  config.eval.chunk = 16384  # pixels (or rays) per jitted call when rendering whole images
  # Each chunk computed in this many parts, one after another inside the call: the same images, one
  # part's activations in memory (on a CPU, parts of ~128 rays are faster: they stay in the caches).
  config.eval.microbatches = 1
  config.eval.lpips_weights = ''  # --mode evaluate: a local LPIPS .npz (README); empty: PSNR and SSIM only

  config.render = ml_collections.ConfigDict()  # --mode render: a camera path around or before the scene
  # 'orbit' (around an object), 'spiral' (NeRF's path in front of a forward-facing scene, e.g. LLFF), or
  # 'auto': the orbit for inward-facing scenes, the spiral for forward-facing ones
  config.render.path = 'auto'
  config.render.frames = 40  # frames in the orbit (360 degrees) or the spiral (two turns)
  config.render.elevation = 30.0  # degrees above the horizontal plane through the origin
  config.render.radius = 0.0  # distance from the origin; 0: the training cameras' mean distance
  config.render.fps = 20
  config.render.formats = ('mp4', 'gif')  # written for the colour and the depth video
  # A camera path file (docs/conventions.md) to render instead of the orbit; --mode render writes the
  # path it renders as <name>.json beside the videos, to edit and render again.
  config.render.camera_path = ''

  # The browser viewer (viser): --mode view serves a workdir's latest checkpoint, train.viewer=True the
  # run as it trains. Optional extra: pip install -r requirements-viewer.txt. README, "The viewer".
  config.view = view = ml_collections.ConfigDict()
  view.host = '127.0.0.1'  # the address it listens on: this machine only (README: SSH port forwarding)
  view.port = 7007  # http://<host>:<port>/ (nerfstudio's port); one already in use is an error
  # Long sides (px) of the frames rendered from the browser's camera: the first while it moves, then each
  # in turn while it rests; a fixed set, so nothing compiles after the first frame of each size
  view.resolutions = (48, 96, 128)
  view.rest_s = 0.15  # seconds the camera must rest before a frame larger than the first is rendered
  view.refresh_s = 1.0  # while training: seconds between frames of a resting camera (as the scene learns)
  view.chunk = 2048  # rays per call: between two training steps the viewer renders at most one chunk
  view.train_util = 0.85  # while training: the share of the time left to training (nerfstudio's default)
  view.jpeg_quality = 80  # of the frames sent to the browser
  view.cameras = True  # draw the training cameras, with their images (the page's checkbox toggles them)
  view.thumbnail = 64  # long side (px) of the training images shown on their camera frustums
  view.max_cameras = 300  # frustums drawn at most (evenly chosen among the training cameras)
  view.reload_s = 5.0  # --mode view: seconds between looks for a newer checkpoint (a run still training)
  view.exit_after_s = 0.0  # stop serving after this many seconds (scripts, tests); 0: until Ctrl+C

  # --mode mesh: marching cubes on the field's density (an SDF method's signed distance, at 0)
  config.mesh = ml_collections.ConfigDict()
  config.mesh.resolution = 256  # grid points along each side of the box
  # The surface's density (an SDF method: a level of -sdf, inside the zero surface); 0: the task's own
  # level, for densities chosen from the sampled ones (Otsu's split of their histogram, what --mode
  # network suggests; fixed values suit one checkpoint only: lego_cpu ~20, longer runs more), an SDF's 0
  config.mesh.threshold = 0.0
  config.mesh.box = ()  # (xmin, ymin, zmin, xmax, ymax, zmax); empty: the cube every camera sees
  config.mesh.chunk = 65536  # points per density query (memory follows it)
  # Floaters: connected pieces with fewer faces than this share of the largest piece's are dropped
  # (1: the largest only; 0: keep every piece); --mode mesh says how many went
  config.mesh.min_component = 0.05
  config.mesh.colours = True  # vertex colours: the field seen along each vertex normal
  config.mesh.normals = True  # vertex normals in the .ply and .obj (from the meshed values' gradient)

  config.pointcloud = ml_collections.ConfigDict()  # --mode pointcloud: rendered depth, back-projected
  config.pointcloud.views = (0, -1, 1)  # [start, stop, step] of the training split's views
  config.pointcloud.min_opacity = 0.95  # pixels more opaque than this become points
  config.pointcloud.max_points = 1_000_000  # thinned evenly to at most this many (0: all)
  # Only the points inside mesh.box (or, empty, the cube every camera sees): an unbounded scene's
  # background would otherwise spread the cloud out to the horizon (configs/colmap_fast.py sets it)
  config.pointcloud.foreground = False

  # Several processes (hosts) through jax.distributed; empty address: one process, unless JAX's own
  # environment variables (JAX_COORDINATOR_ADDRESS, ...) say otherwise. See the README.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.coordinator_address = ''  # host:port of process 0, reachable from every process
  config.distributed.num_processes = 1
  config.distributed.process_id = 0  # this process: 0 .. num_processes - 1
  # Plug-in keys (generated by `python -m nerf_jax.plugins --write`; each entry declares its own):
  # loss.distortion_weight = 0.002  # 'distortion' term: weight of mip-NeRF 360's distortion loss on the shown render's weights
  # loss.eikonal_weight = 0.1  # 'eikonal' term: weight of the mean (|SDF gradient| - 1)^2
  # loss.interlevel_weight = 1.0  # 'interlevel' term: weight of mip-NeRF 360's proposal loss (the proposal weights must bound the field's)
  # loss.mask_weight = 0.1  # 'mask' term: weight of the binary cross-entropy of opacity against alpha
  # model.appearance_eval = 'mean'  # every field: the appearance code of a ray of no training camera (held-out views, camera paths): 'mean' of the codes or 'zero'
  # model.appearance_features = 0  # every field: the length of each training image's appearance code, seen by the colour branch (NeRF-W, nerfacto); 0: no codes
  # model.contract_radius = 4.0  # with model.contraction='linf': half the side of the cube around the origin kept linear (world units); rays end 1000 times this far
  # model.contraction = 'none'  # samplers that support it ('proposal', 'occupancy'): 'linf' contracts space (unbounded scenes; model.box must then be (-2, 2)), 'none' samples model.box's world
  # model.density_noise = 0.0  # 'hierarchical' sampler: standard deviation of Gaussian noise added to the raw density while training; 0: none
  # model.dir_freqs = 4  # nerf, 'frequency' dir_encoding: frequencies of the view directions
  # model.field_samples = 48  # 'proposal' sampler: samples per ray of the shown field
  # model.geo_features = 15  # 'ngp' field: features from the density MLP to the colour MLP
  # model.grid_decay = 0.95  # 'occupancy' sampler: the density's decay per update
  # model.grid_every = 16  # 'occupancy' sampler: steps between the grid's updates
  # model.grid_resolution = 128  # 'occupancy' sampler: the grid's cells per side of model.box
  # model.grid_threshold = 0.01  # 'occupancy' sampler: the opacity over a step that counts occupied
  # model.grid_warmup_steps = 256  # 'occupancy' sampler: the first steps, whose updates look at every cell
  # model.hash_coarsest = 16  # 'hashgrid' encoding: cells per side of model.box at the coarsest level
  # model.hash_custom_vjp = False  # 'hashgrid' encoding: the hand-written backward pass (benchmarks: no faster than autodiff)
  # model.hash_features = 2  # 'hashgrid' encoding: features per level
  # model.hash_finest = 2048  # 'hashgrid' encoding: ... and at the finest
  # model.hash_levels = 16  # 'hashgrid' encoding: resolution levels
  # model.hash_table_log2 = 19  # 'hashgrid' encoding: log2 of each level's table rows
  # model.march_eval_samples = (8, 8)  # 'occupancy' sampler: the same in evaluation and rendering, where the last stage repeats until no ray is left out
  # model.march_samples = (16, 16)  # 'occupancy' sampler: samples per ray, averaged over a batch, each marching stage may query while training
  # model.march_steps = 1024  # 'occupancy' sampler: fixed steps along the box's diagonal (the step size follows); with model.contraction, steps along each ray from near to far, half of them out to the radius
  # model.neus_background = 'none'  # 'neus' sampler: behind the object, 'none' (the images' own background: white, or data.random_bkgd's) or 'field' (photos without masks)
  # model.neus_background_samples = 32  # 'neus' sampler: samples per ray of the background field, even in disparity from the box to infinity
  # model.neus_free_points = 1024  # 'neus' sampler: random points of model.box per step whose SDF gradient the eikonal loss also sees
  # model.num_coarse = 64  # 'hierarchical' sampler: stratified samples per ray (coarse field)
  # model.num_fine = 128  # 'hierarchical' sampler: extra samples from the coarse weights (the fine field sees both)
  # model.num_freqs = 10  # 'frequency' encoding: frequencies of the input coordinates (nerf: points)
  # model.pose_lr_scale = 0.1  # 'refine' camera model: the pose deltas' learning rate as a multiple of train.lr's schedule
  # model.pose_rotation_penalty = 0.001  # 'refine' camera model: weight of the mean rotation delta's norm (radians) in the loss ('loss_pose')
  # model.pose_translation_penalty = 0.01  # 'refine' camera model: weight of the mean translation delta's norm (scene units) in the loss ('loss_pose')
  # model.pose_warmup_steps = 0  # 'refine' camera model: the pose deltas' learning rate ramps linearly from 0 over these first steps (0: none)
  # model.proposal_hash_finest = (128, 256)  # 'proposal' sampler: finest cells per side of each proposal field (coarsest: model.hash_coarsest)
  # model.proposal_hash_levels = 5  # 'proposal' sampler: hash-grid levels of each proposal field
  # model.proposal_hash_table_log2 = 17  # 'proposal' sampler: log2 of each proposal level's table rows
  # model.proposal_padding = 0.01  # 'proposal' sampler: added to each bin's weight before resampling
  # model.proposal_samples = (256, 96)  # 'proposal' sampler: samples per ray of each proposal field, in order (one field each)
  # model.proposal_width = 16  # 'proposal' sampler: hidden units of each proposal field's MLP
  # model.sdf_depth = 1  # 'sdf' field: hidden layers of the SDF network (model.width wide)
  # model.sdf_fd_step = 0.005  # 'sdf' field: the finite differences' step (world units)
  # model.sdf_features = 15  # 'sdf' field: features from the SDF network to the colour network
  # model.sdf_gradient = 'analytic'  # 'sdf' field: the SDF's gradient: 'analytic' or 'finite_difference'
  # model.sdf_init_variance = 0.3  # 'sdf' field: initial variance; inv_s = exp(10 * variance), learned
  # model.sdf_inside_out = False  # 'sdf' field: the scene is inside the sphere (a room), not an object
  # model.sdf_radius = 0.5  # 'sdf' field: radius of the sphere the SDF starts as (world units)
  # model.sh_degree = 4  # 'sh' dir_encoding: bands 0 .. sh_degree - 1 (sh_degree^2 values)
  # model.skip = 4  # 'mlp' field: the encoded point is concatenated again after trunk layer skip + 1
  # model.width_view = 128  # 'mlp' field: the view-dependent colour layer's width
  # (end of plug-in keys)
  return plugins.add_defaults(config)  # every registered plug-in's own keys, with their defaults
