"""A scene the project renders itself, written in the Blender (NeRF synthetic) format.

The demo and the tests need real multi-view data without a download. `spheres` is a handful of
diffuse, partly checker-textured spheres inside [-1.2, 1.2]^3, seen by cameras on a sphere of radius 4
(so the Blender near/far of 2 and 6 hold), rendered analytically by ray-sphere intersection with
supersampling, so the RGBA images have soft, fractional alpha at the silhouettes like Blender's.

Everything here is numpy and independent of `nerf_jax.camera`: the tests use this renderer as an
outside reference for the ray and pose conventions (camera-to-world, camera looking down -Z, +Y up).
"""

import json
import os

import imageio.v3 as iio
import numpy as np

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


def look_at_pose(position, target=(0.0, 0.0, 0.0), world_up=(0.0, 0.0, 1.0)):
  """Camera-to-world matrix of a camera at `position` looking at `target`.

  Returns float64 [4, 4]. Columns 0..2 are the camera's right (+X), up (+Y) and back (+Z) axes in world
  coordinates (OpenGL/Blender: the camera looks down its -Z); column 3 is its centre.
  """
  position = np.asarray(position, np.float64)
  forward = np.asarray(target, np.float64) - position
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, world_up)
  right /= np.linalg.norm(right)
  up = np.cross(right, forward)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, position
  return pose


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
