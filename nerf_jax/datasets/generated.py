"""A scene the project renders itself, written in the Blender (NeRF synthetic) format.

The demo and the tests need real multi-view data without a download. `spheres` is a handful of
diffuse, partly checker-textured spheres inside [-1.2, 1.2]^3, seen by cameras on a sphere of radius 4
(so the Blender near/far of 2 and 6 hold), rendered analytically by ray-sphere intersection with
supersampling, so the RGBA images have soft, fractional alpha at the silhouettes like Blender's.

Everything here is numpy and independent of `nerf_jax.camera`: the tests use this renderer as an
outside reference for the ray and pose conventions (camera-to-world, camera looking down -Z, +Y up).
"""

import argparse
import json
import os

import imageio.v3 as iio
import numpy as np

from nerf_jax.cameras.pinhole import look_at_pose  # the scene's cameras; tests and benchmarks place theirs with it too

CAMERA_ANGLE_X = 0.6911112070083618  # the lego scene's horizontal field of view
CAMERA_RADIUS = 4.0

# (centre xyz, radius, base rgb, checker squares around the equator; 0 = plain)
SPHERES = (
    ((0.0, 0.0, 0.0), 0.6, (0.85, 0.15, 0.1), 8),
    ((0.75, 0.45, 0.2), 0.35, (0.15, 0.35, 0.9), 0),
    ((-0.55, 0.65, -0.25), 0.3, (0.1, 0.75, 0.25), 6),
    ((0.1, -0.8, 0.35), 0.3, (0.95, 0.8, 0.1), 0),
)
_LIGHT = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])

# split -> (number of views, seed of its camera positions)
SPLITS = {'train': (60, 0), 'val': (10, 1), 'test': (10, 2)}


def camera_positions(num_views, seed):
  """Points on the upper part of a sphere of radius CAMERA_RADIUS. float64 [num_views, 3]."""
  rng = np.random.default_rng(seed)
  azimuth = rng.uniform(0.0, 2.0 * np.pi, num_views)
  elevation = np.arcsin(rng.uniform(np.sin(np.radians(-10.0)), np.sin(np.radians(70.0)), num_views))
  return CAMERA_RADIUS * np.stack([np.cos(elevation) * np.cos(azimuth),
                                   np.cos(elevation) * np.sin(azimuth),
                                   np.sin(elevation)], axis=-1)


def pixel_rays(pose, height, width, focal, supersample=1):
  """Rays through a grid of sub-pixel centres, computed independently of nerf_jax.camera.

  Returns origins, directions: float64 [height * s, width * s, 3] with s = supersample; directions
  have z = -1 in camera space (not unit length).
  """
  s = supersample
  cols = (np.arange(width * s) + 0.5) / s
  rows = (np.arange(height * s) + 0.5) / s
  u, v = np.meshgrid(cols, rows, indexing='xy')
  cam_dirs = np.stack([(u - 0.5 * width) / focal, -(v - 0.5 * height) / focal, -np.ones_like(u)], -1)
  directions = cam_dirs @ pose[:3, :3].T
  origins = np.broadcast_to(pose[:3, 3], directions.shape)
  return origins, directions


def shade(origins, directions):
  """Colour and coverage of rays against SPHERES. float64 [..., 3] rgb and [...] alpha in {0, 1}."""
  nearest = np.full(origins.shape[:-1], np.inf)
  rgb = np.zeros(origins.shape)
  for centre, radius, colour, squares in SPHERES:
    oc = origins - np.asarray(centre)
    a = np.sum(directions * directions, -1)
    b = np.sum(oc * directions, -1)
    c = np.sum(oc * oc, -1) - radius**2
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    hit = (disc > 0) & (t > 0) & (t < nearest)
    points = origins + t[..., None] * directions
    normal = (points - np.asarray(centre)) / radius
    albedo = np.broadcast_to(np.asarray(colour), points.shape).copy()
    if squares:
      lon = np.arctan2(normal[..., 1], normal[..., 0])
      lat = np.arcsin(np.clip(normal[..., 2], -1, 1))
      cell = np.floor(lon / np.pi * squares) + np.floor(lat / np.pi * squares)
      albedo = np.where((cell % 2 == 0)[..., None], albedo, 0.95)
    diffuse = 0.35 + 0.65 * np.clip(np.sum(normal * _LIGHT, -1), 0.0, 1.0)
    rgb = np.where(hit[..., None], albedo * diffuse[..., None], rgb)
    nearest = np.where(hit, t, nearest)
  return rgb, np.isfinite(nearest).astype(np.float64)


def spheres_sdf(points):
  """The signed distance to the union of SPHERES (negative inside): float [..., 3] -> float64 [...]."""
  points = np.asarray(points, np.float64)
  return np.min([np.linalg.norm(points - np.asarray(c), axis=-1) - r for c, r, _, _ in SPHERES], axis=0)


def visible_sphere_points(per_sphere=4000, seed=0):
  """Points spread evenly over the upper halves (z above the centre: the part the cameras, from at most
  10 degrees below the horizon, see) of SPHERES, those inside another sphere left out (not on the
  scene's surface). float64 [P, 3]."""
  rng = np.random.default_rng(seed)
  points = []
  for centre, radius, _, _ in SPHERES:
    d = rng.normal(size=(per_sphere, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    d[:, 2] = np.abs(d[:, 2])
    points.append(np.asarray(centre) + radius * d)
  points = np.concatenate(points)
  return points[spheres_sdf(points) > -1e-9]


def mesh_accuracy(vertices, tolerance=0.02, chunk=512):
  """How well a mesh of the scene matches SPHERES: (mean distance of the vertices to the nearest sphere
  surface, the share of visible_sphere_points within `tolerance` of a vertex: completeness).

  vertices: float [V, 3] -> (float, float)
  """
  vertices = np.asarray(vertices, np.float64)
  surfaces = np.stack([np.abs(np.linalg.norm(vertices - np.asarray(c), axis=-1) - r) for c, r, _, _ in SPHERES])
  accuracy = float(np.mean(np.min(surfaces, axis=0)))
  targets = visible_sphere_points()
  squared = np.sum(vertices ** 2, axis=-1)
  nearest = np.empty(len(targets))
  for start in range(0, len(targets), chunk):  # nearest vertex by brute force, a chunk of targets at a time
    t = targets[start:start + chunk]
    d2 = np.sum(t ** 2, axis=-1)[:, None] - 2.0 * t @ vertices.T + squared[None, :]
    nearest[start:start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
  return accuracy, float(np.mean(nearest <= tolerance))


def render_view(pose, height, width, focal, supersample=2):
  """Straight (not premultiplied) RGBA image of the scene. uint8 [height, width, 4]."""
  origins, directions = pixel_rays(pose, height, width, focal, supersample)
  rgb, alpha = shade(origins, directions)
  s = supersample
  blocks = lambda x: x.reshape(height, s, width, s, -1).mean(axis=(1, 3))
  premultiplied = blocks(rgb * alpha[..., None])
  coverage = blocks(alpha[..., None])
  straight = np.where(coverage > 0, premultiplied / np.maximum(coverage, 1e-12), 0.0)
  rgba = np.concatenate([straight, coverage], -1)
  return np.round(np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8)


def write_scene(path, *, size=200, splits=None):
  """Renders the scene into `path` in the Blender layout: transforms_{split}.json and {split}/r_i.png."""
  splits = SPLITS if splits is None else splits
  focal = 0.5 * size / np.tan(0.5 * CAMERA_ANGLE_X)
  for split, (num_views, seed) in splits.items():
    os.makedirs(os.path.join(path, split), exist_ok=True)
    frames = []
    for i, position in enumerate(camera_positions(num_views, seed)):
      pose = look_at_pose(position)
      iio.imwrite(os.path.join(path, split, f'r_{i}.png'), render_view(pose, size, size, focal))
      frames.append({'file_path': f'./{split}/r_{i}', 'transform_matrix': pose.tolist()})
    # Written last, so an interrupted generation is seen as missing and redone, not half-read.
    with open(os.path.join(path, f'transforms_{split}.json'), 'w') as f:
      json.dump({'camera_angle_x': CAMERA_ANGLE_X, 'frames': frames}, f, indent=1)


GENERATED_SCENES = {'spheres': write_scene}


def ensure_scene(root, scene):
  """Renders a built-in scene into root/scene on first use. Returns True when `scene` is built in."""
  if scene not in GENERATED_SCENES:
    return False
  path = os.path.join(root, scene)
  if not all(os.path.exists(os.path.join(path, f'transforms_{s}.json')) for s in SPLITS):
    print(f'Rendering the built-in scene {scene!r} into {path} (first use, a few seconds)...')
    GENERATED_SCENES[scene](path)
  return True


# A textured scene for structure from motion (nerf_jax.sfm and its test): SIFT needs many distinct
# corners, which the spheres' regular checkers do not give. Three spheres on a ground disc, all coloured by
# smooth random noise (a sum of plane waves in 3-D of random directions and wavelengths, so no two patches
# look alike and nothing repeats), lit diffusely (view-independent, as SfM assumes), under a plain sky.
# (centre xyz, radius, noise seed)
TEXTURED_SPHERES = (
    ((0.0, 0.0, -0.15), 0.65, 10),
    ((0.8, 0.55, -0.55), 0.4, 11),
    ((-0.6, 0.75, -0.6), 0.35, 12),
)
TEXTURED_GROUND = (-0.95, 2.4, 13)  # the ground disc: height z, radius, noise seed
TEXTURED_WAVES = 48  # plane waves per noise texture
# Wavelengths from ~0.08 to ~1 scene units: at 256 px a scene unit spans ~90 px, so the finest waves are
# ~7 px long (fine SIFT corners, not aliased after 2x2 supersampling) and the longest vary the colour.
TEXTURED_FREQUENCIES = (6.0, 80.0)  # angular frequency range, radians per scene unit


def noise_texture(points, seed):
  """Smooth random colour at `points` (float64 [..., 3]), a fixed function of `seed`. float64 [..., 3]
  in [0.05, 0.95]."""
  rng = np.random.default_rng(seed)
  directions = rng.normal(size=(TEXTURED_WAVES, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  low, high = TEXTURED_FREQUENCIES
  frequencies = np.exp(rng.uniform(np.log(low), np.log(high), TEXTURED_WAVES))
  phases = rng.uniform(0.0, 2.0 * np.pi, TEXTURED_WAVES)
  # Amplitudes falling as 1/sqrt(frequency): blobs at every scale (SIFT's octaves), none dominating.
  # Mostly brightness (what SIFT sees) with a smaller random tint per wave; a base colour per seed.
  amplitudes = frequencies**-0.5 / np.sqrt(np.sum(frequencies**-1.0) / 2.0)
  weights = amplitudes[:, None] * (1.0 + 0.4 * rng.normal(size=(TEXTURED_WAVES, 3)))
  base = rng.uniform(0.35, 0.65, 3)
  waves = np.sin(points @ (directions * frequencies[:, None]).T + phases)
  return np.clip(base + 0.3 * np.tanh(waves @ weights), 0.05, 0.95)


def shade_textured(origins, directions):
  """Colour of rays against the textured scene (TEXTURED_SPHERES on TEXTURED_GROUND under a sky).

  origins, directions: float64 [..., 3]. Returns float64 [..., 3] rgb, opaque everywhere.
  """
  nearest = np.full(origins.shape[:-1], np.inf)
  normals = np.zeros(origins.shape)
  surface = np.full(origins.shape[:-1], -1)  # which surface each ray hits first: -1 none, then spheres, ground
  for index, (centre, radius, _) in enumerate(TEXTURED_SPHERES):
    oc = origins - np.asarray(centre)
    a = np.sum(directions * directions, -1)
    b = np.sum(oc * directions, -1)
    disc = b * b - a * (np.sum(oc * oc, -1) - radius**2)
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    hit = (disc > 0) & (t > 0) & (t < nearest)
    normal = (origins + t[..., None] * directions - np.asarray(centre)) / radius
    normals = np.where(hit[..., None], normal, normals)
    surface, nearest = np.where(hit, index, surface), np.where(hit, t, nearest)
  height, ground_radius, _ = TEXTURED_GROUND
  with np.errstate(divide='ignore', invalid='ignore'):
    t = (height - origins[..., 2]) / directions[..., 2]
  points = origins + np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)[..., None] * directions
  hit = (t > 0) & (t < nearest) & (np.sum(points[..., :2] ** 2, -1) < ground_radius**2)
  normals = np.where(hit[..., None], np.array([0.0, 0.0, 1.0]), normals)
  surface, nearest = np.where(hit, len(TEXTURED_SPHERES), surface), np.where(hit, t, nearest)

  # The sky: a plain vertical gradient, no texture (nothing there for SIFT to match at infinity).
  unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
  rgb = (0.75 + 0.2 * np.clip(unit[..., 2:3], 0.0, 1.0)) * np.array([0.85, 0.9, 1.0])
  diffuse = 0.45 + 0.55 * np.clip(np.sum(normals * _LIGHT, -1), 0.0, 1.0)
  seeds = [s for _, _, s in TEXTURED_SPHERES] + [TEXTURED_GROUND[2]]
  for index, seed in enumerate(seeds):
    hit = surface == index
    if np.any(hit):  # the texture only where it is seen: it is the costly part
      points = origins[hit] + nearest[hit][:, None] * directions[hit]
      rgb[hit] = noise_texture(points, seed) * diffuse[hit][:, None]
  return rgb


def textured_camera_positions(num_views, seed, radius=CAMERA_RADIUS, elevation=(15.0, 55.0)):
  """An orbit of the textured scene: azimuths evenly spaced (each view overlaps its neighbours), slightly
  jittered, elevations in degrees uniform in `elevation`. float64 [num_views, 3]."""
  rng = np.random.default_rng(seed)
  azimuth = (np.arange(num_views) + rng.uniform(-0.25, 0.25, num_views)) * 2.0 * np.pi / num_views
  elev = np.radians(rng.uniform(*elevation, num_views))
  return radius * np.stack([np.cos(elev) * np.cos(azimuth), np.cos(elev) * np.sin(azimuth), np.sin(elev)], -1)


def write_textured_views(folder, num_views, size, *, seed=0, supersample=1):
  """Renders `num_views` views of the textured scene, size x size, as folder/view_000.png, ...: photos
  with known cameras, for testing structure from motion.

  Returns poses: float64 [num_views, 4, 4] camera-to-world (OpenGL, as look_at_pose; all look at the
  origin from CAMERA_RADIUS) and focal: the focal length in pixels (the field of view of CAMERA_ANGLE_X).
  """
  os.makedirs(folder, exist_ok=True)
  focal = 0.5 * size / np.tan(0.5 * CAMERA_ANGLE_X)
  poses = np.stack([look_at_pose(p) for p in textured_camera_positions(num_views, seed)])
  s = supersample
  for i, pose in enumerate(poses):
    origins, directions = pixel_rays(pose, size, size, focal, s)
    rgb = shade_textured(origins, directions).reshape(size, s, size, s, 3).mean(axis=(1, 3))
    iio.imwrite(os.path.join(folder, f'view_{i:03d}.png'), np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
  return poses, focal


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog='python -m nerf_jax.datasets.generated',
      description='Render a built-in scene: "spheres" as a Blender-format scene (what configs/demo.py '
                  'reads), or "textured" as a folder of photos with no poses (for python -m nerf_jax.sfm).')
  parser.add_argument('scene', choices=('spheres', 'textured'))
  parser.add_argument('out', help='the folder to write')
  parser.add_argument('--views', type=int, default=40, help='textured: how many photos (default 40)')
  parser.add_argument('--size', type=int, default=400, help='their width and height in pixels (default 400)')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.scene == 'spheres':
    write_scene(args.out, size=args.size)
  else:
    write_textured_views(args.out, args.views, args.size, supersample=2)
  print(f'Wrote {args.scene!r} into {args.out}.')


if __name__ == '__main__':
  main()
