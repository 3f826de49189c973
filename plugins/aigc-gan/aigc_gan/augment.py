"""Differentiable augmentation (in the spirit of DiffAugment, Zhao et al. 2020).

On small data sets the discriminator memorises the real images and its gradients stop helping
the generator. Augmenting *every* image the discriminator sees, real and generated alike, with
operations gradients flow through keeps it from memorising without teaching the generator to
draw augmented images. Images are in [-1, 1]; every sample draws its own transform from
``generator`` (the training step's random stream).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _rand(n: int, x: torch.Tensor, generator=None) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def color(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Brightness, saturation (colour images) and contrast, each by a random per-sample amount."""
    n = x.shape[0]
    x = x + (_rand(n, x, generator) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (_rand(n, x, generator) * 2.0) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, x, generator) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125, generator=None) -> torch.Tensor:
    """Shift by up to ``ratio`` of the size in whole pixels; the border pixels fill the gap."""
    n, _, h, w = x.shape
    max_dy, max_dx = max(1, int(h * ratio)), max(1, int(w * ratio))
    dy = torch.randint(-max_dy, max_dy + 1, (n,), device=x.device, generator=generator).to(x.dtype)
    dx = torch.randint(-max_dx, max_dx + 1, (n,), device=x.device, generator=generator).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx / w  # align_corners=False: 2/w per pixel
    theta[:, 1, 2] = -2.0 * dy / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)


def cutout(x: torch.Tensor, ratio: float = 0.5, generator=None) -> torch.Tensor:
    """Blank one random square of ``ratio`` times the size per sample (set to 0, mid-grey)."""
    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    cy = torch.randint(0, h - ch + 1, (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w - cw + 1, (n, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= cy) & (ys < cy + ch) & (xs >= cx) & (xs < cx + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"translation": translation, "cutout": cutout, "color": color}


def augment(x: torch.Tensor, policy: list[str], generator=None) -> torch.Tensor:
    for name in ("color", "translation", "cutout"):  # a fixed order, whatever the config's
        if name in policy:
            x = OPS[name](x, generator=generator)
    return x
