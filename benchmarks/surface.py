"""How close meshes of the built-in 'spheres' scene are to its analytic spheres: issue 28's two figures.

  python main.py --config configs/demo_surface.py && python main.py --config configs/demo_surface.py --mode mesh
  python main.py --config configs/demo_fast.py && python main.py --config configs/demo_fast.py --mode mesh
  python benchmarks/surface.py runs/demo_surface runs/demo_fast

For each workdir (or .ply file), its latest mesh (<workdir>/mesh/step<N>/mesh.ply): the mean distance of
its vertices to the nearest sphere surface (accuracy, scene units; the scene box is [-1.2, 1.2]^3) and
the share of points on the spheres' upper halves, the part the cameras see, within --tolerance of a
vertex (completeness). datasets.generated.mesh_accuracy computes both; tests/test_surface.py checks it
on the exact SDF's mesh and on one 3% too small.
"""

import argparse
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nerf_jax.datasets import generated  # noqa: E402


def latest_mesh(path):
  """path itself if it is a file, else the highest step's mesh.ply under path/mesh/."""
  if os.path.isfile(path):
    return path
  found = glob.glob(os.path.join(path, 'mesh', 'step*', 'mesh.ply'))
  if not found:
    sys.exit(f'error: no mesh under {path}/mesh/: run --mode mesh on it first.')
  return max(found, key=lambda p: int(re.search(r'step(\d+)', p).group(1)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('paths', nargs='+', help='workdirs or mesh .ply files')
  parser.add_argument('--tolerance', type=float, default=0.02)
  args = parser.parse_args(argv)
  import trimesh
  print(f'{"mesh":60s} {"vertices":>9s} {"mean distance":>14s} {"within " + str(args.tolerance):>12s}')
  for path in args.paths:
    mesh_path = latest_mesh(path)
    vertices = trimesh.load(mesh_path).vertices
    accuracy, completeness = generated.mesh_accuracy(vertices, args.tolerance)
    print(f'{mesh_path:60s} {len(vertices):9d} {accuracy:14.4f} {completeness:11.1%}')


if __name__ == '__main__':
  main()
