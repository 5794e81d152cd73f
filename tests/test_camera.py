import jax.numpy as jnp
import numpy as np

from nerf_jax.cameras import pinhole
from nerf_jax.datasets import generated


def _pose():
  return pinhole.look_at_pose([2.5, -1.5, 2.0], target=[0.2, 0.1, -0.1])


def test_ray_through_a_known_point_hits_its_pixel():
  height, width, focal = 60, 80, 70.0
  pose = _pose()
  point = np.array([0.3, -0.2, 0.25])
  # Project with the world-to-camera inverse of the pose: the camera looks down its -Z.
  cam = np.linalg.inv(pose) @ np.append(point, 1.0)
  col = focal * cam[0] / -cam[2] + 0.5 * width - 0.5
  row = -focal * cam[1] / -cam[2] + 0.5 * height - 0.5
  assert cam[2] < 0  # in front of the camera
  intrinsics = pinhole.centred_intrinsics(focal, height, width)
  rays = pinhole.rays_from_pixels(jnp.asarray(pose, jnp.float32), intrinsics, jnp.float32(row),
                                 jnp.float32(col))
  origin, direction = np.asarray(rays.origins), np.asarray(rays.viewdirs)
  along = point - origin
  miss = np.linalg.norm(along - np.dot(along, direction) * direction)
  assert np.dot(along, direction) > 0 and miss < 1e-5
  # The integer pixel holding the projection, rendered by the full grid, passes within a pixel.
  grid = pinhole.image_rays(jnp.asarray(pose, jnp.float32), intrinsics, height, width)
  d = np.asarray(grid.viewdirs[int(round(row)), int(round(col))])
  assert np.linalg.norm(along / np.linalg.norm(along) - d) < 1.0 / focal


def test_matches_the_independent_renderer_rays():
  height, width, focal = 6, 5, 4.0
  pose = _pose()
  origins, directions = generated.pixel_rays(pose, height, width, focal)
  rays = pinhole.image_rays(jnp.asarray(pose, jnp.float32), pinhole.centred_intrinsics(focal, height, width),
                           height, width)
  np.testing.assert_allclose(rays.origins, origins, atol=1e-5)
  np.testing.assert_allclose(rays.directions, directions, atol=1e-5)


def test_poses_are_camera_to_world_looking_down_minus_z():
  # The centre pixel's ray of a camera at (0, 0, 4) looking at the origin points along -Z (world),
  # and starts at the camera: a world-to-camera reading would put it at (0, 0, -4) looking up.
  pose = pinhole.look_at_pose([0.0, 0.0, 4.0], world_up=(0.0, 1.0, 0.0))
  rays = pinhole.image_rays(jnp.asarray(pose, jnp.float32), pinhole.centred_intrinsics(1.0, 2, 2), 2, 2)
  np.testing.assert_allclose(rays.origins[0, 0], [0, 0, 4], atol=1e-6)
  np.testing.assert_allclose(np.asarray(rays.viewdirs).mean(axis=(0, 1)) / np.linalg.norm(
      np.asarray(rays.viewdirs).mean(axis=(0, 1))), [0, 0, -1], atol=1e-6)
  # Image row 0 is the top: its rays point up (+Y here), column 0 is on the left (-X).
  assert rays.directions[0, 0, 1] > 0 > rays.directions[1, 0, 1]
  assert rays.directions[0, 0, 0] < 0 < rays.directions[0, 1, 0]


def test_viewdirs_are_unit_and_directions_keep_z_minus_one():
  pose = _pose()
  rays = pinhole.image_rays(jnp.asarray(pose, jnp.float32), pinhole.centred_intrinsics(5.0, 7, 9), 7, 9)
  np.testing.assert_allclose(np.linalg.norm(rays.viewdirs, axis=-1), 1.0, atol=1e-6)
  cam = np.einsum('ij,hwj->hwi', pose[:3, :3].T, np.asarray(rays.directions))
  np.testing.assert_allclose(cam[..., 2], -1.0, atol=1e-5)


def test_intrinsics_move_the_principal_point_and_scale_each_axis():
  # A pixel at the principal point looks straight down -Z whatever the focal lengths; fx and fy
  # scale x and y separately (non-square pixels, COLMAP's PINHOLE), and cx, cy are in pixels with
  # the top-left pixel's centre at (0.5, 0.5).
  pose = np.eye(4, dtype=np.float32)
  intrinsics = np.array([50.0, 80.0, 12.5, 7.5], np.float32)
  rays = pinhole.rays_from_pixels(pose, intrinsics, jnp.array([7, 7, 9]), jnp.array([12, 14, 12]))
  np.testing.assert_allclose(rays.directions[0], [0, 0, -1], atol=1e-7)
  np.testing.assert_allclose(rays.directions[1], [2 / 50.0, 0, -1], atol=1e-7)  # 2 pixels right
  np.testing.assert_allclose(rays.directions[2], [0, -2 / 80.0, -1], atol=1e-7)  # 2 pixels down


def test_rays_carry_their_camera_through_ndc():
  # The per-ray conditioning (the ray's training camera) survives every mapping of the rays.
  rows, cols = pinhole.pixel_grid(2, 3)
  pose = jnp.asarray(pinhole.look_at_pose([0.0, 0.0, 4.0], world_up=(0.0, 1.0, 0.0)), jnp.float32)
  intrinsics = pinhole.centred_intrinsics(3.0, 2, 3)
  rays = pinhole.rays_from_pixels(pose, intrinsics, rows, cols, 5)
  assert rays.camera.shape == (2, 3, 1) and np.all(np.asarray(rays.camera) == 5)
  ndc = pinhole.ndc_rays(rays, intrinsics)
  assert np.all(np.asarray(ndc.camera) == 5)
  assert pinhole.rays_from_pixels(pose, intrinsics, rows, cols).camera is None


def test_look_at_pose_is_camera_to_world_looking_down_minus_z():
  # The poses convention pitfall for the cameras nerf_jax makes itself (orbits, the test scene): the
  # matrix is camera-to-world, a rotation, its centre the position, and its -Z axis faces the target.
  for position, target, up in (([2.5, -1.5, 2.0], [0.2, 0.1, -0.1], (0.0, 0.0, 1.0)),
                               ([0.0, 0.0, 4.0], [0.0, 0.0, 0.0], (0.0, 1.0, 0.0))):
    pose = pinhole.look_at_pose(position, target=target, world_up=up)
    rotation = pose[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(rotation), 1.0)
    np.testing.assert_allclose(pose[:3, 3], position)
    forward = np.subtract(target, position) / np.linalg.norm(np.subtract(target, position))
    np.testing.assert_allclose(-rotation[:, 2], forward, atol=1e-12)
    assert rotation[:, 1] @ np.asarray(up) > 0  # the image's up is the world's up
