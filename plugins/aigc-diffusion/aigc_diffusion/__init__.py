"""A denoising diffusion image backend for aigc, built on diffusers."""
