"""A DCGAN's networks and its sampling, in plain torch (its training is in ``training.py``).

Generator: latent (+ class embedding) -> 4x4 -> stride-2 transposed convs -> image in [-1, 1].
Discriminator: stride-2 convs down to 4x4 -> one logit, with a projection term for classes.
``DCGAN`` holds what sampling needs (the generator and its EMA copy, which does the sampling), so
a finished run loads here without Lightning; ``DCGANTraining`` adds the discriminator and the losses.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import ConfigError, Content, Generator, Item, check_cancelled, sample_normal, sample_seed
from aigc_core import Field, Params, field_validator, preset

SIZES = {"debug": (8, 16), "small": (32, 64), "base": (64, 128)}  # width, latent
CLASS_EMBED_STD = 0.1  # the class vector starts well below the noise's scale (N(0, 1)); see GeneratorNet
LOSSES = ("non-saturating", "hinge")
AUGMENTATIONS = ("translation", "cutout", "color")


def _augmentations(augment: str) -> list[str]:
    return [a.strip() for a in augment.split(",") if a.strip()]


class DCGANParams(Params):
    size: Literal["debug", "small", "base"] = Field("base", description="preset widths: debug is for fast tests")
    latent_dim: Optional[int] = Field(None, ge=1, description="default from size: 16 / 64 / 128")
    base_channels: Optional[int] = Field(None, ge=1, description="default from size: 8 / 32 / 64")
    conditional: bool = Field(False, description="learn and sample per class (data labels)")
    spectral_norm: bool = Field(False, description="spectral normalisation in the discriminator instead of batch norm")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="0 turns the EMA copy off")
    lr_g: float = Field(2e-4, gt=0, description="generator learning rate (Adam)")
    lr_d: float = Field(2e-4, gt=0, description="discriminator learning rate (Adam)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1 (0.5 as in the DCGAN paper)")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="real targets become 1 - label_smoothing (non-saturating loss only)")
    loss: Literal[LOSSES] = Field("non-saturating", description="adversarial loss: non-saturating (DCGAN's BCE) or hinge")
    r1_gamma: float = Field(0.0, ge=0, description="weight of the R1 gradient penalty on the discriminator at real images (0: off)")
    r1_every: int = Field(1, ge=1, description="apply R1 every this many steps, scaled up to match (lazy regularisation)")
    minibatch_std: bool = Field(False, description="the discriminator sees the batch's feature spread (against collapse)")
    augment: str = Field("", description="differentiable augmentation of what D sees, comma-separated: translation, cutout, color")
    class_norm: bool = Field(False, description="conditional models: per-class gain and shift in the generator's batch norms")
    base_augment: str = Field("translation,cutout", description="augmentation of what D sees when training from "
                              "generator.base with augment unset: a few images overfit a discriminator without it "
                              "('' turns it off)")

    @property
    def augmentations(self) -> list[str]:
        return _augmentations(self.augment)

    @field_validator("augment", "base_augment")
    @classmethod
    def _known_augmentations(cls, augment: str) -> str:
        unknown = [a for a in _augmentations(augment) if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r} (choose from {', '.join(AUGMENTATIONS)})")
        return augment

    width = preset("base_channels", SIZES, 0)
    latent = preset("latent_dim", SIZES, 1)


class DCGANOptions(Params):
    label: Optional[int] = Field(None, ge=0, description="conditional models: the class of every sample (default: cycle through classes)")
    use_ema: bool = Field(True, description="sample from the EMA copy of the generator")
    batch_size: int = Field(64, ge=1, description="samples are computed in aligned chunks of this size")
    truncation: float = Field(1.0, gt=0, le=1, description="scale the latent by this (0, 1]: below 1 trades variety for typical-looking samples")


def _levels(size: int) -> int:
    levels = int(round(math.log2(size / 4)))
    if size not in (8, 16, 32, 64) or 4 * 2 ** levels != size:
        raise ConfigError("data.image_size", f"dcgan needs square images of 8, 16, 32 or 64 pixels, got {size}")
    return levels


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: small normal weights, unit-centred norms."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "weight_orig", module.weight)
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ClassBatchNorm(nn.Module):
    """Batch norm whose gain and shift are looked up per class (de Vries et al. 2017; BigGAN's
    conditioning): the label steers every layer, so the input noise is left to carry the style."""

    def __init__(self, features: int, num_classes: int, dims: int):
        super().__init__()
        self.norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (-1, x.shape[1]) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.gain(y).view(shape) + self.shift(y).view(shape)


class GeneratorNet(nn.Module):
    def __init__(self, latent: int, width: int, channels: int, size: int, num_classes: int,
                 class_norm: bool = False):
        super().__init__()
        levels = _levels(size)
        top = width * 2 ** (levels - 1)
        embed_dim = min(latent, 32)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 1 else None
        if self.embed is not None:
            # Issue 11: at N(0, 1), the scale of the noise, the learnt class vector took over the first
            # layer and every seed of a label gave one picture (spread 0.10 of real; 0.76 at 0.1).
            nn.init.normal_(self.embed.weight, 0.0, CLASS_EMBED_STD)
        inputs = latent + (embed_dim if self.embed is not None else 0)
        class_norm = class_norm and self.embed is not None

        def norm(features: int, dims: int) -> nn.Module:
            if class_norm:
                return ClassBatchNorm(features, num_classes, dims)
            return nn.BatchNorm1d(features) if dims == 1 else nn.BatchNorm2d(features)

        self.project = nn.Sequential(nn.Linear(inputs, top * 16, bias=False), norm(top * 16, 1), nn.ReLU(True))
        self.top = top
        blocks = []
        ch = top
        for _ in range(levels - 1):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm(ch // 2, 2), nn.ReLU(True)]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self._run(self.project, z, y).view(-1, self.top, 4, 4)
        return self._run(self.body, h, y)

    @staticmethod
    def _run(layers: nn.Sequential, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        for layer in layers:
            # an adapter may wrap the layer to train it whole (peft's modules_to_save): still a class norm
            conditioned = isinstance(getattr(layer, "original_module", layer), ClassBatchNorm)
            h = layer(h, y) if conditioned else layer(h)
        return h


class MinibatchStd(nn.Module):
    """Appends the spread of the batch's features as one more channel (Karras et al. 2018), so
    the discriminator can see a batch that lacks variety. With labels, the spread is taken among
    the samples of each sample's own class: a conditional generator that draws one picture per
    class still spreads across classes, and only the per-class spread gives its collapse away."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        flat = x.flatten(1)
        if y is None:
            groups = torch.ones(n, 1, dtype=x.dtype, device=x.device)
        else:
            groups = F.one_hot(y, int(y.max()) + 1).to(x.dtype)
        counts = groups.sum(0)  # samples per group
        mean = (groups.T @ flat) / counts.clamp(min=1)[:, None]
        var = (groups.T @ flat.pow(2)) / counts.clamp(min=1)[:, None] - mean.pow(2)
        spread = (var.clamp(min=0) + 1e-8).sqrt().mean(1) * (counts > 1).to(x.dtype)  # one number per group
        per_sample = groups @ spread
        return torch.cat([x, per_sample.view(n, 1, 1, 1).expand(n, 1, *x.shape[2:])], dim=1)


class DiscriminatorNet(nn.Module):
    def __init__(self, width: int, channels: int, size: int, num_classes: int, spectral: bool,
                 minibatch_std: bool = False):
        super().__init__()
        norm = nn.utils.spectral_norm if spectral else (lambda m: m)
        levels = _levels(size)
        layers = [norm(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(levels - 1):
            layers += [norm(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=spectral))]
            if not spectral:
                layers += [nn.BatchNorm2d(ch * 2)]
            layers += [nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.spread = MinibatchStd() if minibatch_std else None
        ch += 1 if minibatch_std else 0
        features = ch * 16
        self.out = norm(nn.Linear(features, 1))
        self.embed = nn.Embedding(num_classes, features) if num_classes > 1 else None
        if self.embed is not None:
            nn.init.zeros_(self.embed.weight)  # the class term starts silent and is learnt

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        if self.spread is not None:
            h = self.spread(h, y)
        h = h.flatten(1)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def gan_targets(net: GeneratorNet) -> tuple[str, ...]:
    """LoRA's layer: the first transposed convolution, the widest (4x4 -> 8x8), where a digit's
    shape is drawn. The projection from the latent is left alone: 2,048 outputs make its rank-8
    correction cost 4% of a small DCGAN by itself (#24: an adapter within 3% of its base). A
    second LoRA convolution would not fit beside the layers trained whole (``gan_whole``), which
    measured worth more (docs/benchmarks.md, Personalisation). At 8 pixels the only convolution
    makes the pixels: the projection then."""
    convs = [i for i, layer in enumerate(net.body) if isinstance(layer, nn.ConvTranspose2d)]
    return (f"body.{convs[0]}",) if len(convs) > 1 else ("project.0",)


def gan_whole(net: GeneratorNet) -> tuple[str, ...]:
    """What an adapter trains whole: the cheap layers that set style (#24), a few thousand weights
    between them. The body's norms (per-channel, or per-class, gain and shift), the last
    transposed convolution (into the 1-3 image channels: the strokes' thickness and blur), and
    the class embedding. The projection's norm is left out: 2,048 features per class."""
    names = ["embed"] if net.embed is not None else []
    convs = [i for i, layer in enumerate(net.body) if isinstance(layer, nn.ConvTranspose2d)]
    for i, layer in enumerate(net.body):
        if isinstance(layer, ClassBatchNorm):
            names += [f"body.{i}.gain", f"body.{i}.shift"]
        elif isinstance(layer, nn.BatchNorm2d):
            names.append(f"body.{i}")
    if len(convs) > 1:  # at 8 pixels it is the only one, and the projection's LoRA is the adapter
        names.append(f"body.{convs[-1]}")
    return tuple(names)


class DCGAN(Generator):
    modality = "image"
    shards = True
    Params = DCGANParams
    GenerateOptions = DCGANOptions
    training = "aigc_gan.training:DCGANTraining"
    #: LoRA's default layer (peft target_modules: a module name or its dotted suffix, so G and
    #: G_ema get the same ones): the first transposed convolution; the norms, the last convolution
    #: and the class embedding are trained whole. Indices in ``body`` depend on the image size, so
    #: an instance lists its own (``gan_targets``, ``gan_whole``); this one exists from 16 pixels.
    adapter_targets: ClassVar[tuple[str, ...]] = ("body.0",)

    def __init__(self, params: DCGANParams, info: dict):
        super().__init__(params, info)
        channels, height, width = info["shape"]
        if height != width:
            raise ConfigError("data.image_size", f"dcgan needs square images, got {height}x{width}")
        self.num_classes = int(info.get("num_classes") or 0) if params.conditional else 0
        self.G = GeneratorNet(params.latent, params.width, channels, height, self.num_classes,
                              params.class_norm)
        self.G.apply(dcgan_init)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if params.ema_decay > 0 else None
        self.adapter_targets = gan_targets(self.G)
        self.adapter_whole = gan_whole(self.G)

    # -- generation ---------------------------------------------------------------------------
    def latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Sample i's latent depends on (seed, i) alone: batches and shards cannot change it."""
        return sample_normal(n, self.params.latent, seed, start)

    def generate(self, n: int, seed: int, options: DCGANOptions, start: int = 0) -> Content:
        """Samples ``start .. start+n-1``. Work is done in chunks aligned to multiples of
        ``batch_size`` and padded to full size, so a sample's bytes never depend on ``n``,
        ``start`` or how a sharded job split the range (convolution kernels differ by batch shape)."""
        label, batch_size = options.label, options.batch_size
        net = self.G_ema if (options.use_ema and self.G_ema is not None) else self.G
        items: list[Item] = []
        end = start + n
        for lo in range((start // batch_size) * batch_size, end, batch_size):
            check_cancelled()  # a server that gave up on this request stops it here
            z = self.latents(batch_size, seed, lo).to(self.device) * options.truncation
            idx = torch.arange(lo, lo + batch_size)
            labels = None
            if self.num_classes:
                labels = (torch.full_like(idx, label) if label is not None else idx % self.num_classes).to(self.device)
            images = ((net(z, labels).float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
            for j in range(batch_size):
                index = lo + j
                if not start <= index < end:
                    continue
                meta = {"index": index, "seed": seed, "sample_seed": sample_seed(seed, index)}
                if labels is not None:
                    meta["label"] = int(labels[j])
                items.append(Item(images[j].astype(np.float32), meta))
        return Content("image", items)

    def artifact_state(self) -> dict[str, torch.Tensor]:
        """Only what sampling needs: the EMA generator (or the live one without EMA)."""
        net = self.G_ema if self.G_ema is not None else self.G
        return {f"G.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        g_state = {k[2:]: v for k, v in state.items() if k.startswith("G.")}
        if not g_state or len(g_state) != len(state):
            from aigc_core import CheckpointError

            raise CheckpointError("checkpoint is not a dcgan generator (no 'G.' tensors)")
        try:
            self.G.load_state_dict(g_state, strict=True)
        except RuntimeError as exc:
            from aigc_core import CheckpointError

            raise CheckpointError(f"checkpoint does not fit this dcgan: {str(exc).splitlines()[0]}") from None
        if self.G_ema is not None:
            self.G_ema.load_state_dict(g_state, strict=True)
