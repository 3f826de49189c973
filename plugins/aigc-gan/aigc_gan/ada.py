"""Adaptive discriminator augmentation (in the spirit of Karras et al. 2020, "Training generative
adversarial networks with limited data"), in plain torch.

With a few thousand images the discriminator soon memorises the real ones, and its gradients stop
teaching the generator anything. Showing it every image (real and generated alike) through random,
differentiable transformations, each applied with probability ``p``, keeps it from memorising;
because the generator's images are transformed the same way and ``p`` stays below where the
transformations would "leak" (about 0.8), the generator still learns to draw untransformed images.

How much augmentation is needed is not known in advance, so ``p`` is steered: the overfitting
heuristic r_t = E[sign(D(real))] is near 0 while D cannot tell real from generated and near 1 once
it is sure of every training image. Every ``interval`` discriminator steps, ``p`` moves up when
r_t is above ``target`` and down when below, by as much as makes 0 -> 1 take ``kimg`` thousand
real images. ``p`` and the running sums are buffers: they are saved in checkpoints, so a resumed
run continues with the p it had.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

#: the transformation groups, applied in this order whatever the config says
OPS = ("blit", "geom", "color", "cutout")


def parse_ops(text: str) -> list[str]:
    """``"blit,geom"`` -> ``["blit", "geom"]``; ``ValueError`` naming an unknown group."""
    ops = [o.strip() for o in text.split(",") if o.strip()]
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r} (choose from {', '.join(OPS)})")
    return ops


def _chance(n: int, p: float, x: torch.Tensor, generator=None) -> torch.Tensor:
    """Per sample: 1.0 with probability p, else 0.0 (shape (n,))."""
    return (torch.rand(n, device=x.device, generator=generator) < p).to(x.dtype)


def _rotation(angle: torch.Tensor, exact: bool = False) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    if exact:  # quarter turns: exactly 0 and +-1, so pixels land on pixel centres
        c, s = torch.round(c), torch.round(s)
    m = torch.zeros(angle.shape[0], 3, 3, device=angle.device, dtype=angle.dtype)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    return m


def _scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(sx.shape[0], 3, 3, device=sx.device, dtype=sx.dtype)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = sx, sy, 1
    return m


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=tx.device, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def geometric_matrices(n: int, p: float, ops: list[str], size: tuple[int, int], x: torch.Tensor,
                       generator=None) -> Optional[torch.Tensor]:
    """Per sample 3x3 matrices in the normalised coordinates of ``F.affine_grid`` (-1..1), each
    transformation drawn and kept with probability ``p``; None when no geometric group is on."""
    if not {"blit", "geom"} & set(ops):
        return None
    h, w = size
    m = torch.eye(3, device=x.device, dtype=x.dtype).repeat(n, 1, 1)

    def rand(*shape):
        return torch.rand(*shape, device=x.device, generator=generator).to(x.dtype)

    def randn(*shape):
        return torch.randn(*shape, device=x.device, generator=generator).to(x.dtype)

    if "blit" in ops:
        # x-flip, a quarter-turn rotation, an integer translation by up to 1/8 of the size
        flip = 1 - 2 * torch.floor(rand(n) * 2) * _chance(n, p, x, generator)
        m = m @ _scaling(flip, torch.ones_like(flip))
        quarter = torch.floor(rand(n) * 4) * _chance(n, p, x, generator)
        m = m @ _rotation(quarter * math.pi / 2, exact=True)
        on = _chance(n, p, x, generator)
        tx = torch.round((rand(n) * 2 - 1) * 0.125 * w) * 2 / w * on
        ty = torch.round((rand(n) * 2 - 1) * 0.125 * h) * 2 / h * on
        m = m @ _translation(tx, ty)
    if "geom" in ops:
        # isotropic scale, rotation, anisotropic scale, fractional translation
        s = torch.exp2(randn(n) * 0.2 * _chance(n, p, x, generator))
        m = m @ _scaling(s, s)
        angle = (rand(n) * 2 - 1) * math.pi * _chance(n, p, x, generator)
        m = m @ _rotation(angle)
        a = torch.exp2(randn(n) * 0.2 * _chance(n, p, x, generator))
        m = m @ _scaling(a, 1 / a)
        on = _chance(n, p, x, generator)
        m = m @ _translation(randn(n) * 0.125 * 2 * on, randn(n) * 0.125 * 2 * on)
    return m


def augment(x: torch.Tensor, p: float, ops: list[str], generator=None) -> torch.Tensor:
    """``x`` (N, C, H, W) in [-1, 1] with each transformation of ``ops`` applied to each sample with
    probability ``p``; differentiable in ``x``. ``p`` 0 returns ``x`` itself."""
    if p <= 0 or not ops:
        return x
    n, c, h, w = x.shape
    m = geometric_matrices(n, p, ops, (h, w), x, generator)
    if m is not None:
        grid = F.affine_grid(m[:, :2, :], [n, c, h, w], align_corners=False)
        # bilinear with mirrored borders; an identity matrix samples pixel centres exactly
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if "color" in ops:
        rand = lambda: torch.randn(n, 1, 1, 1, device=x.device, generator=generator).to(x.dtype)  # noqa: E731
        chance = lambda: _chance(n, p, x, generator).view(n, 1, 1, 1)  # noqa: E731
        x = x + rand() * 0.2 * chance()  # brightness
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * torch.exp2(rand() * 0.5 * chance()) + mean  # contrast
        if c == 3:
            luma = x.mean(1, keepdim=True)
            x = (x - luma) * torch.exp2(rand() * chance()) + luma  # saturation
    if "cutout" in ops:
        on = _chance(n, p, x, generator).view(n, 1, 1)
        cy = torch.rand(n, 1, 1, device=x.device, generator=generator)
        cx = torch.rand(n, 1, 1, device=x.device, generator=generator)
        ys = (torch.arange(h, device=x.device).view(1, h, 1) + 0.5) / h
        xs = (torch.arange(w, device=x.device).view(1, 1, w) + 0.5) / w
        inside = ((ys - cy).abs() < 0.25) & ((xs - cx).abs() < 0.25)
        x = x * (1 - inside.to(x.dtype) * on).unsqueeze(1)
    return x


class AdaptiveAugment(nn.Module):
    """The augmentation the discriminator sees through, and the controller of its probability.

    ``mode``: ``ada`` (p steered by r_t), ``fixed`` (p stays at ``p``), ``off`` (no augmentation;
    r_t is still measured, which tells whether a run would have needed it).
    """

    def __init__(self, mode: str = "ada", p: float = 0.0, target: float = 0.6, kimg: float = 100.0,
                 interval: int = 4, ops: str = "blit,geom,color"):
        super().__init__()
        if mode not in ("ada", "fixed", "off"):
            raise ValueError(f"augmentation mode must be ada, fixed or off, got {mode!r}")
        self.mode, self.target, self.kimg, self.interval = mode, float(target), float(kimg), int(interval)
        self.ops = parse_ops(ops)
        self.register_buffer("p", torch.tensor(float(p) if mode != "off" else 0.0, dtype=torch.float64))
        # sums since the last adjustment: sign(D(real)) and how many real images
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("seen", torch.zeros((), dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        #: the r_t of the last adjustment (0 until ``measured``)
        self.register_buffer("r_t", torch.zeros((), dtype=torch.float64))

    @property
    def measured(self) -> bool:
        """Whether r_t has been measured yet (after ``interval`` discriminator steps)."""
        return int(self.steps) >= self.interval

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return augment(x, float(self.p), self.ops, generator)

    @torch.no_grad()
    def observe(self, d_real: torch.Tensor) -> None:
        """Count one discriminator step's logits on real images; adjust p every ``interval`` steps."""
        self.sign_sum += torch.sign(d_real.detach()).sum().to(torch.float64)
        self.seen += d_real.numel()
        self.steps += 1
        if int(self.steps) % self.interval == 0:
            self.adjust()

    @torch.no_grad()
    def adjust(self) -> None:
        if float(self.seen) == 0:
            return
        r_t = self.sign_sum / self.seen
        self.r_t.copy_(r_t)
        if self.mode == "ada":
            step = torch.sign(r_t - self.target) * self.seen / (self.kimg * 1000.0)
            self.p.copy_((self.p + step).clamp(0.0, 1.0))
        self.sign_sum.zero_()
        self.seen.zero_()
