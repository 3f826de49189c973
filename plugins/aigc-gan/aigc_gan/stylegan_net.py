"""The style-based generator and its discriminator, in plain torch (no Lightning here).

Read top to bottom: the layers with equalised learning rates, the mapping network z (+ class) -> w,
the synthesis network (a learnt 4x4 constant, modulated and demodulated 3x3 convolutions with
per-pixel noise, an RGB output at every resolution summed upwards: the "skip" generator), the
residual discriminator with a minibatch standard deviation, and the operations on W that make the
style-based generator worth having: truncation toward the tracked average, style mixing and
projection of an image into W+.

Images are (N, C, H, W) in [-1, 1]. Every layer of the synthesis network reads its own w (``ws``
of shape (N, num_ws, w_dim)): the same w everywhere for an ordinary sample, two different ones on
either side of a crossover layer for a mixed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Widths:
    """The sizes of one preset: latent and style widths, mapping depth, and channels per resolution
    (``base // resolution``, clamped to ``[lo, hi]``: wide at 4x4, narrow at full size)."""

    z_dim: int
    w_dim: int
    mapping_layers: int
    base: int
    lo: int
    hi: int

    def channels(self, resolution: int) -> int:
        return max(self.lo, min(self.hi, self.base // resolution))


#: debug is for tests (milliseconds a step); small and base are the CPU-trainable presets
SIZES = {
    "debug": Widths(z_dim=16, w_dim=16, mapping_layers=2, base=64, lo=8, hi=16),
    "small": Widths(z_dim=128, w_dim=128, mapping_layers=2, base=384, lo=16, hi=128),
    "base": Widths(z_dim=256, w_dim=256, mapping_layers=4, base=1024, lo=32, hi=256),
}


def resolutions(size: int) -> list[int]:
    """4, 8, ..., size; ``ValueError`` unless size is 8, 16, 32 or 64."""
    if size not in (8, 16, 32, 64):
        raise ValueError(f"stylegan needs square images of 8, 16, 32 or 64 pixels, got {size}")
    return [4 * 2 ** i for i in range(int(math.log2(size // 4)) + 1)]


def num_ws(size: int) -> int:
    """How many w a ``size`` synthesis network reads: one per convolution, plus the last RGB layer."""
    return 2 * len(resolutions(size))


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU scaled by sqrt(2), so activations keep their scale from layer to layer."""
    return F.leaky_relu(x, 0.2) * SQRT2


# -- layers with equalised learning rate ------------------------------------------------------------
# Weights are stored as N(0, 1) and scaled by 1/sqrt(fan_in) when used: Adam then moves every layer
# at the same relative speed (Karras et al. 2018), whatever its fan-in.

class EqualLinear(nn.Module):
    def __init__(self, inputs: int, outputs: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs) / lr_mul)
        self.bias = nn.Parameter(torch.full((outputs,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(inputs)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, inputs, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(outputs)) if bias else None
        self.scale = 1.0 / math.sqrt(inputs * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


# -- the mapping network ------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z (+ a class embedding) -> w through an MLP with a lower learning rate (``lr_mul``; StyleGAN
    uses 0.01, which on a CPU budget left the class unlearnt after 500 steps: 0.1 learns it). ``w_avg`` tracks the mean w per class (one row when unconditional): the
    centre that truncation pulls toward, and where projection starts."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, num_classes: int = 0, lr_mul: float = 0.1):
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.embed = nn.Embedding(num_classes, w_dim) if num_classes > 1 else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)
        dims = [z_dim + (w_dim if self.embed is not None else 0)] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))
        self.register_buffer("w_avg", torch.zeros(max(num_classes, 1), w_dim))

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional mapping network needs labels")
            x = torch.cat([x, normalize_2nd_moment(self.embed(y))], dim=1)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x

    def centre(self, y: Optional[torch.Tensor], n: int) -> torch.Tensor:
        """The tracked average w for each of ``n`` samples (of their class, when conditional)."""
        if self.embed is None or y is None:
            return self.w_avg[:1].expand(n, -1)
        return self.w_avg[y]

    @torch.no_grad()
    def track(self, w: torch.Tensor, y: Optional[torch.Tensor], beta: float) -> None:
        """Move the average toward this batch's w (per class present in it)."""
        if self.embed is None or y is None:
            self.w_avg[0].lerp_(w.detach().mean(0), 1.0 - beta)
            return
        for label in torch.unique(y):
            self.w_avg[label].lerp_(w.detach()[y == label].mean(0), 1.0 - beta)


def truncate(w: torch.Tensor, centre: torch.Tensor, psi: float) -> torch.Tensor:
    """Pull w toward the average style by ``psi`` in (0, 1]: 1 leaves it, smaller trades variety for
    typical-looking samples. Works on (N, w_dim) and (N, num_ws, w_dim)."""
    if psi == 1.0:
        return w
    if w.dim() == 3 and centre.dim() == 2:
        centre = centre[:, None]
    return centre + psi * (w - centre)


# -- the synthesis network ---------------------------------------------------------------------------

class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled by a style from w, and whose output channels
    are then divided by the norm the modulated weights would have (demodulation, StyleGAN2), so
    each layer's output keeps unit scale whatever the style. Computed as scale -> plain conv ->
    scale (the "non-fused" form): the same result as per-sample weights, at the cost of one shared
    convolution, which CPUs do much faster than a grouped one."""

    def __init__(self, inputs: int, outputs: int, kernel: int, w_dim: int, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        if up:
            # a stride-2 transposed 4x4 convolution: upsampling and convolving in one step, each output
            # pixel from 2x2 taps (no checkerboard: the kernel is a multiple of the stride), at a
            # quarter of the cost of convolving an upsampled input with 3x3
            kernel = 4
        self.weight = nn.Parameter(torch.randn(outputs, inputs, kernel, kernel))
        self.affine = EqualLinear(w_dim, inputs, bias_init=1.0)  # styles start at 1: the plain conv
        # fan-in of one output pixel: all input channels times the taps that reach it
        self.scale = 1.0 / math.sqrt(inputs * (4 if up else kernel * kernel))
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, inputs)
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None]
        if self.up:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1)
            taps = weight.square().sum((2, 3)) / 4  # an output pixel sees a quarter of the kernel
        else:
            out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
            taps = weight.square().sum((2, 3))
        if self.demodulate:
            # the norm of the modulated weights reaching each output channel, per sample
            d = (styles.square() @ taps.t() + 1e-8).rsqrt()  # (N, outputs)
            out = out * d[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise times a learnt strength (one per layer, starting at 0): the
    network puts stochastic detail (stroke texture) there instead of spending style on it."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + noise * self.strength


class StyleLayer(nn.Module):
    def __init__(self, inputs: int, outputs: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(inputs, outputs, 3, w_dim, up=up)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.noise(self.conv(x, w), noise)
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, inputs: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(inputs, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image. Layer ``i`` reads ``ws[:, i]``; the RGB output at each
    resolution reads the w of the layer after it (so ``num_ws`` is one more than the convolutions).
    Layers at low resolutions (the first few w) set pose and shape, the later ones stroke and detail."""

    def __init__(self, w_dim: int, channels: int, size: int, widths: Widths):
        super().__init__()
        res = resolutions(size)
        self.size, self.w_dim = size, w_dim
        self.const = nn.Parameter(torch.randn(widths.channels(4), 4, 4))
        self.layers = nn.ModuleList([StyleLayer(widths.channels(4), widths.channels(4), w_dim, 4)])
        self.rgbs = nn.ModuleList([ToRGB(widths.channels(4), channels, w_dim)])
        for r in res[1:]:
            cin, cout = widths.channels(r // 2), widths.channels(r)
            self.layers.append(StyleLayer(cin, cout, w_dim, r, up=True))
            self.layers.append(StyleLayer(cout, cout, w_dim, r))
            self.rgbs.append(ToRGB(cout, channels, w_dim))
        self.num_ws = len(self.layers) + 1
        assert self.num_ws == num_ws(size)

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        return [(1, layer.resolution, layer.resolution) for layer in self.layers]

    def random_noise(self, n: int, generator: Optional[torch.Generator] = None,
                     device: torch.device | str = "cpu") -> list[torch.Tensor]:
        return [torch.randn(n, *shape, generator=generator, device=device) for shape in self.noise_shapes()]

    def forward(self, ws: torch.Tensor, noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """``noise``: one (N or 1, 1, r, r) tensor per layer; ``None`` draws it from the global generator."""
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"expected ws of shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        n = ws.shape[0]
        if noise is None:
            noise = self.random_noise(n, device=ws.device)
        x = self.const[None].expand(n, -1, -1, -1)
        x = self.layers[0](x, ws[:, 0], noise[0])
        rgb = self.rgbs[0](x, ws[:, 1])
        for i in range(1, len(self.rgbs)):
            a, b = 2 * i - 1, 2 * i
            x = self.layers[a](x, ws[:, a], noise[a])
            x = self.layers[b](x, ws[:, b], noise[b])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + self.rgbs[i](x, ws[:, b + 1])
        return rgb


class StyleGenerator(nn.Module):
    """Mapping and synthesis together, with the operations on W sampling uses."""

    def __init__(self, channels: int, size: int, widths: Widths, num_classes: int = 0, mapping_lr_mul: float = 0.1):
        super().__init__()
        self.mapping = MappingNetwork(widths.z_dim, widths.w_dim, widths.mapping_layers, num_classes, mapping_lr_mul)
        self.synthesis = SynthesisNetwork(widths.w_dim, channels, size, widths)
        self.z_dim, self.w_dim, self.num_ws = widths.z_dim, widths.w_dim, self.synthesis.num_ws
        self.num_classes = num_classes if num_classes > 1 else 0

    def styles(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, psi: float = 1.0) -> torch.Tensor:
        """z -> w (N, w_dim), truncated toward the tracked average (of the sample's class) by psi."""
        y = y if self.num_classes else None
        w = self.mapping(z, y)
        return truncate(w, self.mapping.centre(y, w.shape[0]), psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, psi: float = 1.0,
                noise: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        return self.synthesis(self.broadcast(self.styles(z, y, psi)), noise)


def mix_styles(w_a: torch.Tensor, w_b: torch.Tensor, crossover: int, num_ws: int) -> torch.Tensor:
    """ws with w_a in layers ``[0, crossover)`` (coarse: pose, shape) and w_b from ``crossover`` on
    (fine: stroke, texture). ``crossover`` must be in ``[1, num_ws)``."""
    if not 1 <= crossover < num_ws:
        raise ValueError(f"crossover layer must be in [1, {num_ws - 1}], got {crossover}")
    layer = torch.arange(num_ws, device=w_a.device)[None, :, None]
    return torch.where(layer < crossover, w_a[:, None], w_b[:, None])


def interpolate_styles(w_a: torch.Tensor, w_b: torch.Tensor, frames: int) -> torch.Tensor:
    """``frames`` evenly spaced points on the straight line from w_a to w_b (both (w_dim,)): (frames, w_dim)."""
    t = torch.linspace(0.0, 1.0, frames, device=w_a.device, dtype=w_a.dtype)[:, None]
    return w_a[None] * (1 - t) + w_b[None] * t


# -- projection: the w of a given image -------------------------------------------------------------

def project(G: StyleGenerator, target: torch.Tensor, w_start: torch.Tensor, steps: int = 200, lr: float = 0.1,
            noise: Optional[Sequence[torch.Tensor]] = None, w_weight: float = 1e-3,
            on_step=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ws in W+ (one w per layer) so that ``G.synthesis(ws, noise)`` reproduces ``target``
    (N, C, H, W) in [-1, 1], starting from ``w_start`` (N, w_dim), usually the tracked average.

    The loss is the pixel error at full and half resolution (the coarse error steers early, when
    the shapes are far apart), plus a small pull toward ``w_start`` that keeps ws where the
    generator was trained (far outside it a reconstruction can match pixels and still be no digit).
    Adam with a cosine-decaying step. Returns the ws and the final per-image pixel error.
    Deterministic: no randomness here, ``noise`` is fixed by the caller.
    """
    G_params = [p.requires_grad for p in G.parameters()]
    for p in G.parameters():
        p.requires_grad_(False)
    ws = w_start[:, None].repeat(1, G.num_ws, 1).detach().clone().requires_grad_(True)
    anchor = w_start[:, None].detach()
    opt = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.99))
    small_target = F.avg_pool2d(target, 2)
    try:
        with torch.enable_grad():
            for step in range(steps):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                image = G.synthesis(ws, noise)
                per_image = (image - target).square().flatten(1).mean(1) + \
                    (F.avg_pool2d(image, 2) - small_target).square().flatten(1).mean(1)
                loss = per_image.sum() + w_weight * (ws - anchor).square().mean((1, 2)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if on_step is not None:
                    on_step(step + 1, steps)
        with torch.no_grad():
            error = (G.synthesis(ws, noise) - target).square().flatten(1).mean(1)
    finally:
        for p, flag in zip(G.parameters(), G_params):
            p.requires_grad_(flag)
    return ws.detach(), error


# -- the discriminator ---------------------------------------------------------------------------------

class MinibatchStd(nn.Module):
    """Appends, as one more channel, the standard deviation of the features across groups of
    ``group`` samples: a generator that draws one picture for every z is given away by a spread of
    zero (Karras et al. 2018). With labels, the groups are the samples of each class in the batch:
    a conditional generator that draws one picture per class still spreads across classes, and
    only the spread within a class gives it away (seen in calibration runs: one picture per class
    after 2,000 steps with groups of 4 mixed classes)."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        if y is not None:
            return torch.cat([x, self.class_spread(x, y)], dim=1)
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (n/g, c, h, w)
        y = y.mean((1, 2, 3)).reshape(n // g, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    @staticmethod
    def class_spread(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample: the features' standard deviation among the batch's samples of its class
        (0 for a class with one sample), as a (N, 1, H, W) channel."""
        n, _, h, w = x.shape
        flat = x.flatten(1)
        groups = F.one_hot(y, int(y.max()) + 1).to(x.dtype)  # (N, classes)
        counts = groups.sum(0).clamp(min=1)[:, None]
        mean = (groups.t() @ flat) / counts
        var = (groups.t() @ flat.square()) / counts - mean.square()
        spread = (var.clamp(min=0) + 1e-8).sqrt().mean(1) * (groups.sum(0) > 1).to(x.dtype)
        return (groups @ spread).view(n, 1, 1, 1).expand(n, 1, h, w)


class DBlock(nn.Module):
    """Residual: a 3x3 conv, 2x average-pool, a 3x3 conv; the skip path pools and mixes channels with a
    1x1 conv; the sum is divided by sqrt(2) to keep its scale."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv0 = EqualConv2d(inputs, inputs, 3)
        self.conv1 = EqualConv2d(inputs, outputs, 3)
        self.skip = EqualConv2d(inputs, outputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = lrelu(self.conv0(x))
        x = lrelu(self.conv1(F.avg_pool2d(x, 2)))
        return (x + skip) / SQRT2


class Discriminator(nn.Module):
    """Image -> one logit, with the same channel widths as the generator at each resolution. When
    conditional, a projection term (the class embedding dotted with the last features) says how
    well the image fits its label (Miyato & Koyama 2018, as StyleGAN2-ADA conditions)."""

    def __init__(self, channels: int, size: int, widths: Widths, num_classes: int = 0, mbstd_group: int = 4):
        super().__init__()
        res = resolutions(size)
        self.from_rgb = EqualConv2d(channels, widths.channels(size), 1)
        self.blocks = nn.ModuleList(DBlock(widths.channels(r), widths.channels(r // 2)) for r in reversed(res[1:]))
        top = widths.channels(4)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group > 0 else None
        self.conv = EqualConv2d(top + (1 if self.mbstd is not None else 0), top, 3)
        self.fc = EqualLinear(top * 16, top)
        self.out = EqualLinear(top, 1)
        self.embed = nn.Embedding(num_classes, top) if num_classes > 1 else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)
        self.top = top

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = lrelu(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x, y if self.embed is not None else None)
        x = lrelu(self.conv(x))
        h = lrelu(self.fc(x.flatten(1)))
        logit = self.out(h).squeeze(1)
        if self.embed is not None and y is not None:
            logit = logit + (self.embed(y) * h).sum(1) / math.sqrt(self.top)
        return logit
