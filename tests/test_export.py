"""--mode mesh, --mode pointcloud and camera paths, on the built-in scene's spheres, known analytically."""

import os

import flax.linen as nn
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import checks, errors, export, fields, tasks, video
from nerf_jax.cameras import camera_path
from nerf_jax.datasets import generated
from nerf_jax.types import FieldOutput
from tests.conftest import override, small_nerf_config

# The built-in scene's spheres (all touching the central one: one connected surface) and a small floater.
CENTRES = np.array([s[0] for s in generated.SPHERES] + [(1.0, 1.0, 1.0)], np.float32)
RADII = np.array([s[1] for s in generated.SPHERES] + [0.1], np.float32)
COLOURS = np.array([s[2] for s in generated.SPHERES] + [(0.5, 0.5, 0.5)], np.float32)


class SpheresField(nn.Module):
  """The spheres as a field: density 100 deep inside a sphere, 0 outside, rising linearly over 0.1
  across the surface (so density 50 is exactly on it); each sphere's colour."""

  @nn.compact
  def __call__(self, points, viewdirs, cond=None):
    distance = jnp.linalg.norm(points[..., None, :] - CENTRES, axis=-1) - RADII  # [..., S, spheres]
    sigma = 100.0 * jnp.clip(0.5 - distance / 0.1, 0.0, 1.0).max(axis=-1)
    rgb = jnp.asarray(COLOURS)[jnp.argmin(distance, axis=-1)]
    return FieldOutput(rgb=rgb, density=sigma)


def _surface_distance(points):
  """Distance of each point (float [P, 3]) to the nearest sphere surface."""
  return np.min(np.abs(np.linalg.norm(points[:, None] - CENTRES, axis=-1) - RADII), axis=1)


@pytest.fixture()
def analytic(spheres_root):
  fields.FIELDS.register('test_spheres', lambda model_config, encoding, dir_encoding, scene: SpheresField())
  try:
    config = small_nerf_config(spheres_root, **{'model.field': 'test_spheres', 'model.num_coarse': 64,
                                                'model.num_fine': 64, 'data.near': 2.0, 'data.far': 6.0})
    task = tasks.make_task(config)
    params, state = task.init_variables(jax.random.PRNGKey(0))
    yield config, task, {**params, **state}
  finally:
    fields.FIELDS.unregister('test_spheres')


def test_mesh_vertices_lie_on_the_spheres_with_their_colours(analytic, tmp_path):
  config, task, params = analytic
  mesh_config = override(config, **{'mesh.resolution': 64, 'mesh.threshold': 50.0, 'mesh.min_component': 0.0,
                                    'mesh.box': (-1.3, -1.3, -1.3, 1.3, 1.3, 1.3)}).mesh
  paths, report = export.extract_mesh(task, params, mesh_config, str(tmp_path))
  import trimesh
  mesh = trimesh.load(paths[0])
  assert sorted(os.path.basename(p) for p in paths) == ['mesh.obj', 'mesh.ply']
  assert len(mesh.vertices) == report['vertices'] > 1000
  distance = _surface_distance(np.asarray(mesh.vertices))
  # Exact where the density is linear across the surface; off by up to half a voxel (0.041) only where
  # two spheres meet in a crease.
  assert distance.max() < 0.02 and np.median(distance) < 1e-3, (distance.max(), np.median(distance))
  # Colours: each vertex has its own sphere's colour (seen from outside along the normal).
  nearest = np.argmin(np.abs(np.linalg.norm(mesh.vertices[:, None] - CENTRES, axis=-1) - RADII), axis=1)
  colours = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
  assert np.mean(np.abs(colours - COLOURS[nearest]).max(axis=1) < 0.01) > 0.99
  # Normals in the file: outward, the spheres' own.
  nearest_normal = (mesh.vertices - CENTRES[nearest]) / RADII[nearest][:, None]
  assert np.mean(np.sum(np.asarray(mesh.vertex_normals) * nearest_normal, axis=-1) > 0.95) > 0.95
  # The default mesh.min_component drops the floater (a piece of ~1% of the scene's faces; with it go
  # specks where spheres' creases pass through grid points), says so, and keeps the rest.
  near_floater = lambda v: np.linalg.norm(v - CENTRES[-1], axis=-1) < 0.3
  assert near_floater(mesh.vertices).sum() > 20
  mesh_config = override(config, **{'mesh.resolution': 64, 'mesh.threshold': 50.0, 'mesh.colours': False,
                                    'mesh.box': (-1.3, -1.3, -1.3, 1.3, 1.3, 1.3)}).mesh
  paths, report = export.extract_mesh(task, params, mesh_config, str(tmp_path / 'default'))
  cleaned = trimesh.load(paths[0])
  assert report['pieces_dropped'] >= 1 and report['faces_dropped'] > near_floater(mesh.vertices).sum()
  assert not near_floater(cleaned.vertices).any()
  assert len(cleaned.vertices) > 0.99 * (len(mesh.vertices) - near_floater(mesh.vertices).sum())


def test_default_box_is_what_the_cameras_see_and_a_bad_threshold_is_named(analytic, tmp_path):
  config, task, params = analytic
  lo, hi = task.scene_box()
  # Cameras at distance 4 around the origin, near 2: the cube of half-side 2 around the origin.
  np.testing.assert_allclose(lo, -2.0, atol=0.05)
  np.testing.assert_allclose(hi, 2.0, atol=0.05)
  with pytest.raises(errors.ConfigError, match='mesh level 500 .mesh.threshold.*is outside the values'):
    export.extract_mesh(task, params, override(config, **{'mesh.resolution': 16, 'mesh.threshold': 500.0}).mesh,
                        str(tmp_path))


def test_point_cloud_points_lie_on_the_spheres(analytic, tmp_path):
  config, task, params = analytic
  config = override(config, **{'pointcloud.views': (0, 4, 1)})
  paths, report = export.extract_point_cloud(task, params, config, str(tmp_path))
  import trimesh
  cloud = trimesh.load(paths[0])
  assert report['views'] == 4 and len(cloud.vertices) == report['points'] > 500
  distance = _surface_distance(np.asarray(cloud.vertices))
  # The expected depth of a density that rises over 0.1, sampled every 0.03: a bias of about 0.015.
  assert np.percentile(distance, 99) < 0.05 and np.median(distance) < 0.02, np.percentile(distance, [50, 99])
  thinned, _ = export.extract_point_cloud(task, params, override(config, **{'pointcloud.max_points': 100}),
                                          str(tmp_path / 'thin'))
  assert len(trimesh.load(thinned[0]).vertices) == 100


def test_small_pieces_are_dropped_by_their_share_of_the_largest():
  # Two separate triangles and a square of two triangles: at a share of 1 (or 0.6) the square alone
  # stays; without one triangle, at 0.5 both pieces stay, the vertices renumbered.
  vertices = np.arange(30, dtype=float).reshape(10, 3)
  faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [7, 8, 9]])
  for share in (1.0, 0.6):
    kept_vertices, kept_faces, kept, pieces, dropped = export.drop_small_pieces(vertices, faces, share)
    assert kept.tolist() == [6, 7, 8, 9] and kept_faces.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert (pieces, dropped) == (2, 2)
    np.testing.assert_array_equal(kept_vertices, vertices[6:])
  kept_vertices, kept_faces, kept, pieces, dropped = export.drop_small_pieces(vertices, faces[[0, 2, 3]], 0.5)
  assert kept.tolist() == [0, 1, 2, 6, 7, 8, 9] and (pieces, dropped) == (0, 0)
  assert kept_faces.tolist() == [[0, 1, 2], [3, 4, 5], [4, 5, 6]]


def test_a_camera_path_written_and_read_back_renders_the_same_frames(analytic, tmp_path):
  config, task, params = analytic
  config = override(config, **{'render.frames': 3, 'render.formats': ('gif',)})
  paths = video.render_path(task, params, config.render, str(tmp_path / 'a'), config.eval)
  assert sorted(os.path.basename(p) for p in paths) == ['orbit.gif', 'orbit.json', 'orbit_depth.gif']
  path = camera_path.read(str(tmp_path / 'a' / 'orbit.json'))
  assert path.poses.shape == (3, 4, 4) and (path.height, path.width) == (32, 32)
  np.testing.assert_allclose(path.poses, task.camera_path(config.render).poses, atol=1e-6)
  # Edited by hand (here: copied under another name), then rendered again: the same frames.
  again = override(config, **{'render.camera_path': str(tmp_path / 'a' / 'orbit.json')})
  paths = video.render_path(task, params, again.render, str(tmp_path / 'b'), config.eval)
  assert os.path.basename(paths[0]) == 'orbit.gif'
  first = iio.imread(tmp_path / 'a' / 'orbit.gif', index=None)
  np.testing.assert_array_equal(iio.imread(tmp_path / 'b' / 'orbit.gif', index=None), first)
  assert first.shape[0] == 3 and np.abs(np.diff(first[..., :3].astype(float), axis=0)).mean() > 1.0


def test_a_bad_camera_path_file_is_named(tmp_path):
  path = tmp_path / 'path.json'
  path.write_text('{"fps": 20, "height": 8, "width": 8, "frames": [{"transform_matrix": [[1, 0]]}]}')
  with pytest.raises(errors.ConfigError, match=r"path.json' \(render.camera_path\): frame 0 needs"):
    camera_path.read(str(path))
  with pytest.raises(errors.ConfigError, match='cannot be read'):
    camera_path.read(str(tmp_path / 'missing.json'))


def test_network_check_suggests_a_mesh_threshold_and_mesh_uses_it_by_default(analytic, tmp_path):
  config, task, params = analytic
  report, _ = checks.check_network(task, params, override(config, **{'eval.chunk': 256}))
  # Empty space is 0 here, the spheres 100, with a linear ramp between: Otsu splits the two.
  assert 10.0 < report['suggested_mesh_threshold'] < 90.0
  auto = override(config, **{'mesh.resolution': 48, 'mesh.box': (-1.3, -1.3, -1.3, 1.3, 1.3, 1.3)}).mesh
  assert auto.threshold == 0.0  # the default
  _, mesh_report = export.extract_mesh(task, params, auto, str(tmp_path))
  assert 10.0 < mesh_report['threshold'] < 90.0 and mesh_report['vertices'] > 500
