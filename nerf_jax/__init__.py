"""nerf_jax: Neural Radiance Fields in JAX/Flax, built to be learned from."""
