import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nerf_jax import batching


@pytest.mark.parametrize('n', [1, 2, 3, 17, 1000, 1024, 1025, 65537])
def test_permute_is_a_bijection(n):
  out = np.asarray(batching.permute(jax.random.PRNGKey(n), jnp.arange(n), n))
  np.testing.assert_array_equal(np.sort(out), np.arange(n))


def test_epoch_batches_are_disjoint_and_cover_the_epoch():
  n, batch = 1000, 96  # 10 steps per epoch, 40 items left over per epoch
  key = jax.random.PRNGKey(0)
  epoch = [np.asarray(batching.epoch_batch(key, s, batch, n)) for s in range(10)]
  seen = np.concatenate(epoch)
  assert len(np.unique(seen)) == len(seen) == 960  # no duplicates inside the epoch, let alone a step
  next_epoch = np.asarray(batching.epoch_batch(key, 10, batch, n))
  assert len(np.unique(next_epoch)) == batch
  assert not np.array_equal(next_epoch, epoch[0])  # a fresh permutation each epoch


def test_batches_are_uniform_over_the_pool():
  # Over many epochs every item is drawn about equally often, and item order within a batch is mixed.
  n, batch, steps = 200, 50, 800
  key = jax.random.PRNGKey(1)
  f = jax.jit(lambda s: batching.epoch_batch(key, s, batch, n))
  counts = np.bincount(np.concatenate([np.asarray(f(s)) for s in range(steps)]), minlength=n)
  expected = steps * batch / n  # 200 per item; a chi-square with 199 dof has sd ~20
  chi2 = np.sum((counts - expected) ** 2 / expected)
  assert chi2 < 199 + 5 * 20, chi2
  first = np.asarray(f(0))
  assert abs(np.corrcoef(np.arange(batch), first)[0, 1]) < 0.5  # not an ordered slice


def test_batch_larger_than_pool_is_a_clear_error():
  with pytest.raises(ValueError, match='batch size'):
    batching.epoch_batch(jax.random.PRNGKey(0), 0, 10, 5)


def test_precrop_is_on_before_its_step_and_off_after():
  height, width, steps = 40, 60, 10
  row0, rows, col0, cols = batching.crop_box(height, width, 0.5)
  assert (row0, rows, col0, cols) == (10, 20, 15, 30)
  key = jax.random.PRNGKey(0)
  for all_images in (True, False):
    draw = jax.jit(lambda s: batching.pixel_batch(key, s, 3, height, width, 256, all_images=all_images,
                                                  precrop_steps=steps, precrop_frac=0.5))
    for step in (0, steps - 1):
      _, r, c = map(np.asarray, draw(step))
      assert r.min() >= row0 and r.max() < row0 + rows and c.min() >= col0 and c.max() < col0 + cols
    for step in (steps, steps + 100):
      _, r, c = map(np.asarray, draw(step))
      outside = (r < row0) | (r >= row0 + rows) | (c < col0) | (c >= col0 + cols)
      assert outside.mean() > 0.5  # 3/4 of the image lies outside the crop


def test_single_image_batches_use_one_image_without_duplicates():
  key = jax.random.PRNGKey(2)
  images = []
  for step in range(20):
    image, r, c = map(np.asarray, batching.pixel_batch(key, step, 5, 16, 16, 200, all_images=False))
    assert len(set(image.tolist())) == 1
    assert len(set(zip(r.tolist(), c.tolist()))) == 200  # no pixel twice (the randint pitfall)
    images.append(image[0])
  assert len(set(images)) > 1


def test_all_image_batches_cover_every_image():
  image, r, c = map(np.asarray, batching.pixel_batch(jax.random.PRNGKey(3), 0, 4, 8, 8, 200,
                                                     all_images=True))
  assert set(image.tolist()) == {0, 1, 2, 3}
  assert len(set(zip(image.tolist(), r.tolist(), c.tolist()))) == 200
