"""A picture of a mesh file from one camera, its vertices drawn as z-buffered dots (the README's mesh
pictures): python docs/mesh_picture.py mesh.ply out.png [--shade] [--position 2.6,-2.6,2.0].

Vertex colours as stored, or with --shade grey lit by the vertex normals (the geometry alone: pits,
bumps and floaters show that colour would hide). numpy and trimesh only: no OpenGL on the machine.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402

from nerf_jax.cameras.pinhole import look_at_pose  # noqa: E402


def draw(vertices, colours, pose, size, focal):
  """vertices float [V, 3] seen from pose (camera-to-world, looking down -Z), colours float [V, 3] in
  [0, 1]; returns uint8 [size, size, 3], white where nothing is drawn."""
  camera = (vertices - pose[:3, 3]) @ pose[:3, :3]  # world -> camera coordinates
  depth = -camera[:, 2]
  u = np.round(focal * camera[:, 0] / depth + size / 2).astype(int)
  v = np.round(-focal * camera[:, 1] / depth + size / 2).astype(int)
  image = np.ones((size, size, 3))
  nearest = np.full((size, size), np.inf)
  for du in (0, 1):  # 2x2 dots, so a dense mesh closes
    for dv in (0, 1):
      uu, vv = u + du, v + dv
      ok = (depth > 0) & (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
      np.minimum.at(nearest, (vv[ok], uu[ok]), depth[ok])
  for du in (0, 1):
    for dv in (0, 1):
      uu, vv = u + du, v + dv
      ok = (depth > 0) & (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
      front = ok.copy()
      front[ok] = depth[ok] <= nearest[vv[ok], uu[ok]] + 1e-9
      image[vv[front], uu[front]] = colours[front]
  return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('mesh')
  parser.add_argument('out')
  parser.add_argument('--shade', action='store_true', help='grey, lit by the normals, instead of vertex colours')
  parser.add_argument('--position', default='2.6,-2.6,2.0', help='the camera centre x,y,z (looking at the origin)')
  parser.add_argument('--size', type=int, default=400)
  parser.add_argument('--focal', type=float, default=520.0)
  args = parser.parse_args(argv)
  import trimesh
  mesh = trimesh.load(args.mesh, process=False)
  vertices = np.asarray(mesh.vertices)
  pose = look_at_pose([float(x) for x in args.position.split(',')])
  if args.shade:
    light = pose[:3, 2] + np.array([0.0, 0.0, 0.5])  # from behind the camera, a little above
    light /= np.linalg.norm(light)
    lit = 0.25 + 0.75 * np.clip(np.asarray(mesh.vertex_normals) @ light, 0, 1)
    colours = np.repeat(lit[:, None], 3, axis=1) * 0.9
  else:
    colours = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
  iio.imwrite(args.out, draw(vertices, colours, pose, args.size, args.focal))


if __name__ == '__main__':
  main()
