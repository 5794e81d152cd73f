"""Taking the scene out: --mode mesh (the field's density on a grid, marching cubes, vertex colours,
.ply and .obj) and --mode pointcloud (the training views' rendered depth, back-projected, .ply).

Marching cubes is PyMCubes (one 0.3 MB C++ extension, the library the original NeRF code's
extract_mesh used); scikit-image has it too but brings scipy, networkx and more into the core install.
trimesh writes the files (vertex colours in both) and is what users open them with.
"""

import os
import time

import jax
import numpy as np

from nerf_jax import evaluate, parallel
from nerf_jax.cameras import pinhole
from nerf_jax.errors import ConfigError
from nerf_jax.progress import Progress


def common_view_box(poses, near):
  """An axis-aligned cube every camera sees past its near plane: centred on the point nearest every
  camera's axis, half-side the smallest camera distance to it minus near (at least 0.1 of it).

  poses: float [N, 4, 4] camera-to-world, looking down -Z. Returns (lo, hi), float64 [3] each.
  """
  centre, _ = pinhole.look_at_centre(poses)
  distance = float(np.min(np.linalg.norm(poses[:, :3, 3] - centre, axis=-1)))
  half = max(distance - near, 0.1 * distance)
  return centre - half, centre + half


def _grid_axes(lo, hi, resolution):
  """The grid's coordinates along x, y and z: three float32 [resolution]."""
  return [np.linspace(lo[d], hi[d], resolution, dtype=np.float32) for d in range(3)]


def grid_points(lo, hi, resolution):
  """The grid's points, float32 [resolution^3, 3], x slowest (index [i, j, k] -> i * r^2 + j * r + k)."""
  return np.stack(np.meshgrid(*_grid_axes(lo, hi, resolution), indexing='ij'), axis=-1).reshape(-1, 3)


def sample_grid(density_fn, lo, hi, resolution, chunk):
  """density_fn (float32 [n, 3] -> [n]) on the grid, `chunk` points at a time (memory follows the
  chunk; the grid itself is resolution^3 float32). Returns float32 [resolution] * 3."""
  out = np.empty(resolution ** 3, np.float32)
  progress = Progress(-(-out.size // chunk), desc='density', unit='chunk')
  axes = _grid_axes(lo, hi, resolution)  # points made chunk by chunk: the whole grid's would be 12 r^3 bytes
  for start in range(0, out.size, chunk):
    index = np.arange(start, min(start + chunk, out.size))
    i, j, k = index // resolution ** 2, index // resolution % resolution, index % resolution
    points = np.stack([axes[0][i], axes[1][j], axes[2][k]], axis=-1)
    out[index] = density_fn(points)
    progress.update(1)
  progress.close()
  return out.reshape(resolution, resolution, resolution)


def marching_cubes(density, threshold, lo, hi):
  """The surface density = threshold (inside: density above it), in world coordinates.

  density: float [r, r, r] on the grid from lo to hi (a density, or an SDF's -sdf). Returns (vertices
  float64 [V, 3], faces int [F, 3], outward unit normals float64 [V, 3] from the values' gradient).
  """
  import mcubes  # here: only this mode needs it
  if not density.min() < threshold < density.max():
    raise ConfigError(f'The mesh level {threshold:.3g} (mesh.threshold; 0: the task\'s own) is outside the '
                      f'values sampled on the box ({density.min():.3g} to {density.max():.3g}): nothing crosses '
                      f'it. --mode network suggests a density threshold; check mesh.box holds the scene.')
  # Padded with a sub-threshold shell so surfaces cut by the box close instead of leaving holes.
  padded = np.pad(density, 1, constant_values=min(float(density.min()), threshold - 1.0))
  vertices, faces = mcubes.marching_cubes(padded, threshold)
  vertices -= 1.0
  step = (np.asarray(hi) - np.asarray(lo)) / (density.shape[0] - 1)
  gradient = np.stack(np.gradient(padded), axis=-1)
  nearest = np.clip(np.round(vertices + 1.0).astype(int), 0, padded.shape[0] - 1)
  normals = -gradient[nearest[:, 0], nearest[:, 1], nearest[:, 2]] / step
  normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
  return np.asarray(lo) + vertices * step, faces.astype(np.int64), normals


def drop_small_pieces(vertices, faces, min_fraction):
  """The mesh without its connected pieces of fewer faces than min_fraction of the largest piece's
  (floaters: a density field's specks in empty space, an SDF's stray zero crossings). min_fraction 1:
  the largest piece only; 0: every piece.

  vertices float [V, 3], faces int [F, 3] -> (vertices, faces, kept vertex indices into the input,
  pieces dropped, faces dropped)
  """
  labels = np.arange(len(vertices))
  while True:  # label propagation: each face takes its vertices' smallest label, until nothing moves
    smallest = labels[faces].min(axis=1)
    new = labels.copy()
    np.minimum.at(new, faces, smallest[:, None])
    new = new[new]  # jump along chains: converges in O(log diameter) rounds on long meshes
    if np.array_equal(new, labels):
      break
    labels = new
  face_labels = labels[faces[:, 0]]
  sizes = np.bincount(face_labels)
  pieces = np.flatnonzero(sizes)
  keep_labels = pieces[sizes[pieces] >= min_fraction * sizes.max()]
  keep_faces = faces[np.isin(face_labels, keep_labels)]
  kept = np.unique(keep_faces)
  remap = np.full(len(vertices), -1)
  remap[kept] = np.arange(len(kept))
  return vertices[kept], remap[keep_faces], kept, len(pieces) - len(keep_labels), len(faces) - len(keep_faces)


def write_mesh(path_stem, vertices, faces, colours=None, normals=None):
  """Writes path_stem.ply and path_stem.obj (vertex colours float [V, 3] in [0, 1], unit vertex
  normals float [V, 3], each when given)."""
  import trimesh
  colours = None if colours is None else np.round(np.clip(colours, 0, 1) * 255).astype(np.uint8)
  mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colours, vertex_normals=normals, process=False)
  paths = [f'{path_stem}.ply', f'{path_stem}.obj']
  os.makedirs(os.path.dirname(path_stem) or '.', exist_ok=True)
  mesh.export(paths[0], vertex_normal=normals is not None)
  mesh.export(paths[1], include_normals=normals is not None)
  return paths


def write_points(path, points, colours):
  """A coloured point cloud as binary .ply: points float [P, 3], colours float [P, 3] in [0, 1]."""
  import trimesh
  colours = np.round(np.clip(colours, 0, 1) * 255).astype(np.uint8)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  trimesh.PointCloud(points, colors=colours).export(path)
  return path


def suggest_threshold(densities):
  """A density threshold for --mode mesh from a sample of the field's densities (float, any shape):
  Otsu's split of the histogram of the densities above 1 (below that a step of a scene's size is
  nearly transparent: empty space, which fills most of a box and would swamp the histogram) into
  the two classes it separates best. mesh.threshold=0 (the default) uses it on the sampled grid; a
  fixed one suits one checkpoint only (lego_cpu at 4,000 steps: 19.6 on --mode network's 32^3 grid,
  where 25 loses most of the bucket and the cab)."""
  d = np.asarray(densities, np.float64).ravel()
  d = d[d > 1.0]
  if len(d) < 2 or d.min() == d.max():
    return 25.0
  counts, edges = np.histogram(d, 256)
  centres = 0.5 * (edges[1:] + edges[:-1])
  below, mass = np.cumsum(counts), np.cumsum(counts * centres)
  # Between-class variance for a split after each bin (Otsu 1979), up to a constant factor.
  between = (mass[-1] * below / below[-1] - mass) ** 2 / np.maximum(below * (below[-1] - below), 1e-12)
  return float(edges[np.argmax(between) + 1])


def foreground_box(task, mesh_config):
  """(lo, hi) float64 [3] each: mesh.box where set, else the cube every camera sees (task.scene_box)."""
  box = mesh_config.box
  return (np.asarray(box[:3], np.float64), np.asarray(box[3:], np.float64)) if box else task.scene_box()


def extract_mesh(task, params, mesh_config, out_dir):
  """--mode mesh: writes out_dir/mesh.{ply,obj}. Returns (paths, report dict).

  mesh_config: config.mesh (resolution, threshold, box, chunk, min_component, colours, normals). The
  task says what is meshed and at which level (surface_values, surface_level: a density field's Otsu
  threshold, an SDF's zero); mesh.threshold > 0 overrides the level.
  """
  c = mesh_config
  lo, hi = foreground_box(task, c)
  values_fn = jax.jit(task.surface_values)
  start = time.perf_counter()
  values = sample_grid(lambda p: np.asarray(values_fn(params, p)), lo, hi, c.resolution, c.chunk)
  threshold = c.threshold if c.threshold > 0 else task.surface_level(values)
  vertices, faces, normals = marching_cubes(values, threshold, lo, hi)
  vertices, faces, kept, pieces_dropped, faces_dropped = drop_small_pieces(vertices, faces, c.min_component)
  normals = normals[kept]
  colours = None
  if c.colours:
    # Each vertex seen from outside along its normal: the colour a camera facing the surface sees.
    colour_fn = jax.jit(task.field_colour)
    colours = np.concatenate([
        np.asarray(colour_fn(params, vertices[i:i + c.chunk].astype(np.float32),
                             -normals[i:i + c.chunk].astype(np.float32)))
        for i in range(0, len(vertices), c.chunk)]) if len(vertices) else None
  paths = (write_mesh(os.path.join(out_dir, 'mesh'), vertices, faces, colours, normals if c.normals else None)
           if parallel.is_main_process() else [])
  report = {'box': (lo.round(3).tolist(), hi.round(3).tolist()), 'resolution': c.resolution,
            'threshold': round(threshold, 4), 'vertices': len(vertices), 'faces': len(faces),
            'pieces_dropped': pieces_dropped, 'faces_dropped': faces_dropped,
            'extent': (vertices.max(0) - vertices.min(0)).round(3).tolist() if len(vertices) else None,
            'seconds': round(time.perf_counter() - start, 1)}
  return paths, report


def extract_point_cloud(task, params, config, out_dir, mesh=None):
  """--mode pointcloud: every training view rendered, its opaque pixels back-projected along their
  rays (task.view_points), merged into out_dir/pointcloud.ply. Returns (paths, report dict)."""
  c = config.pointcloud
  evaluator = evaluate.Evaluator(task, config.eval.chunk, mesh, microbatches=config.eval.microbatches)
  start = time.perf_counter()
  points, colours = [], []
  progress = Progress(task.num_views(task.train_split), desc='views', unit='view',
                      enabled=parallel.is_main_process())
  for view in task.eval_views(task.train_split, tuple(c.views)):
    outputs = evaluator.render(params, view)
    p, rgb = task.view_points(view, outputs, c.min_opacity)
    points.append(p)
    colours.append(rgb)
    progress.update(1)
  progress.close()
  num_views = len(points)
  points, colours = np.concatenate(points), np.concatenate(colours)
  if c.foreground:  # an unbounded scene's background lies out to the horizon: keep the foreground only
    lo, hi = foreground_box(task, config.mesh)
    inside = np.all((points >= lo) & (points <= hi), axis=-1)
    points, colours = points[inside], colours[inside]
  if len(points) > c.max_points > 0:  # an even thinning, the same on every run
    keep = np.random.default_rng(0).choice(len(points), c.max_points, replace=False)
    points, colours = points[keep], colours[keep]
  if not len(points):
    raise ConfigError(f'No pixel of the rendered views is more opaque than pointcloud.min_opacity='
                      f'{c.min_opacity}: lower it, or train longer.')
  paths = [write_points(os.path.join(out_dir, 'pointcloud.ply'), points, colours)] if parallel.is_main_process() else []
  report = {'views': num_views, 'points': len(points),
            'extent': [round(float(x), 3) for x in points.max(0) - points.min(0)],
            'seconds': round(time.perf_counter() - start, 1)}
  return paths, report

