"""A DCGAN as a LightningModule: the science here, the engineering in Lightning's Trainer.

Generator: latent (+ class embedding) -> 4x4 -> stride-2 transposed convs -> image in [-1, 1].
Discriminator: stride-2 convs down to 4x4 -> one logit, with a projection term for classes.
Two optimisers under manual optimisation (Lightning 2's way), BCE with logits, and an EMA copy
of the generator that does the sampling.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import ConfigError, Content, Generator, Item, check_cancelled, sample_seed

from .augment import augment

SIZES = {"debug": (8, 16), "small": (32, 64), "base": (64, 128)}  # width, latent
CLASS_EMBED_STD = 0.1  # the class vector starts well below the noise's scale (N(0, 1)); see GeneratorNet
LOSSES = ("non-saturating", "hinge")
AUGMENTATIONS = ("translation", "cutout", "color")


@dataclass
class DCGANParams:
    size: Literal["debug", "small", "base"] = "base"  # preset widths: debug is for fast tests
    latent_dim: Optional[int] = None  # default from size: 16 / 64 / 128
    base_channels: Optional[int] = None  # default from size: 8 / 32 / 64
    conditional: bool = False  # learn and sample per class (data labels)
    spectral_norm: bool = False  # spectral normalisation in the discriminator instead of batch norm
    ema_decay: float = 0.999  # 0 turns the EMA copy off
    lr_g: float = 2e-4  # generator learning rate (Adam)
    lr_d: float = 2e-4  # discriminator learning rate (Adam)
    beta1: float = 0.5  # Adam beta1 (0.5 as in the DCGAN paper)
    beta2: float = 0.999  # Adam beta2
    label_smoothing: float = 0.0  # real targets become 1 - label_smoothing (non-saturating loss only)
    loss: str = "non-saturating"  # adversarial loss: non-saturating (DCGAN's BCE) or hinge
    r1_gamma: float = 0.0  # weight of the R1 gradient penalty on the discriminator at real images (0: off)
    r1_every: int = 1  # apply R1 every this many steps, scaled up to match (lazy regularisation)
    minibatch_std: bool = False  # the discriminator sees the batch's feature spread (against collapse)
    augment: str = ""  # differentiable augmentation of what D sees, comma-separated: translation, cutout, color

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss: unknown loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.r1_gamma < 0:
            raise ValueError("r1_gamma: must be 0 or more")
        if self.r1_every < 1:
            raise ValueError("r1_every: must be at least 1")
        unknown = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"augment: unknown augmentation {unknown[0]!r} (choose from {', '.join(AUGMENTATIONS)})")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError("latent_dim: must be at least 1")
        if self.base_channels is not None and self.base_channels < 1:
            raise ValueError("base_channels: must be at least 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay: must be in [0, 1)")
        for key in ("lr_g", "lr_d"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be positive")
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key}: must be in [0, 1)")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing: must be in [0, 0.5)")

    @property
    def augmentations(self) -> list[str]:
        return [a.strip() for a in self.augment.split(",") if a.strip()]

    @property
    def width(self) -> int:
        return self.base_channels or SIZES[self.size][0]

    @property
    def latent(self) -> int:
        return self.latent_dim or SIZES[self.size][1]


@dataclass
class DCGANOptions:
    label: Optional[int] = None  # conditional models: the class of every sample (default: cycle through classes)
    use_ema: bool = True  # sample from the EMA copy of the generator
    batch_size: int = 64  # samples are computed in aligned chunks of this size
    truncation: float = 1.0  # scale the latent by this (0, 1]: below 1 trades variety for typical-looking samples

    def validate(self) -> None:
        if not 0.0 < self.truncation <= 1.0:
            raise ValueError("truncation: must be in (0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if self.label is not None and self.label < 0:
            raise ValueError("label: must be 0 or more")


def _levels(size: int) -> int:
    levels = int(round(math.log2(size / 4)))
    if size not in (8, 16, 32, 64) or 4 * 2 ** levels != size:
        raise ConfigError("data.image_size", f"dcgan needs square images of 8, 16, 32 or 64 pixels, got {size}")
    return levels


def _dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: small normal weights, unit-centred norms."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "weight_orig", module.weight)
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GeneratorNet(nn.Module):
    def __init__(self, latent: int, width: int, channels: int, size: int, num_classes: int):
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
        self.project = nn.Sequential(nn.Linear(inputs, top * 16, bias=False), nn.BatchNorm1d(top * 16), nn.ReLU(True))
        self.top = top
        blocks = []
        ch = top
        for _ in range(levels - 1):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.body(self.project(z).view(-1, self.top, 4, 4))


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


class DCGAN(Generator):
    modality = "image"
    shards = True
    Params = DCGANParams
    GenerateOptions = DCGANOptions

    def __init__(self, params: DCGANParams, info: dict):
        super().__init__(params, info)
        self.automatic_optimization = False
        channels, height, width = info["shape"]
        if height != width:
            raise ConfigError("data.image_size", f"dcgan needs square images, got {height}x{width}")
        self.num_classes = int(info.get("num_classes") or 0) if params.conditional else 0
        self.G = GeneratorNet(params.latent, params.width, channels, height, self.num_classes)
        self.D = DiscriminatorNet(params.width, channels, height, self.num_classes, params.spectral_norm,
                                  params.minibatch_std)
        self.G.apply(_dcgan_init)
        self.D.apply(_dcgan_init)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if params.ema_decay > 0 else None

    # -- training -----------------------------------------------------------------------------
    def configure_optimizers(self):
        p = self.params
        opt_g = torch.optim.Adam(self.G.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2))
        opt_d = torch.optim.Adam(self.D.parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2))
        return opt_g, opt_d

    @property
    def iteration(self) -> int:
        """Training iterations so far: Lightning counts each of the two optimiser steps as a global step."""
        return self.global_step // 2

    def d_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees: the image, augmented when the config asks (real and fake alike)."""
        policy = self.params.augmentations
        return augment(x, policy) if policy else x

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        if self.params.loss == "hinge":
            return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        real_target = torch.full_like(d_real, 1.0 - self.params.label_smoothing)
        return F.binary_cross_entropy_with_logits(d_real, real_target) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        if self.params.loss == "hinge":
            return -d_fake.mean()
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))  # non-saturating

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x * 2.0 - 1.0  # the generator's own preprocessing: data in [0, 1], model in [-1, 1]
        y = y if self.num_classes else None
        p = self.params
        opt_g, opt_d = self.optimizers()
        n = x.shape[0]
        z = torch.randn(n, p.latent, device=self.device)

        fake = self.G(z, y)
        r1 = p.r1_gamma > 0 and self.iteration % p.r1_every == 0
        x_real = x.detach().requires_grad_(True) if r1 else x
        d_real = self.D(self.d_view(x_real), y)
        d_fake = self.D(self.d_view(fake.detach()), y)
        loss_d = self.d_loss(d_real, d_fake)
        logs = {"loss_d": loss_d.detach()}
        if r1:
            # R1 (Mescheder et al. 2018): flat discriminator around real data, scaled for laziness
            (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
            penalty = grad.pow(2).flatten(1).sum(1).mean()
            loss_d = loss_d + 0.5 * p.r1_gamma * p.r1_every * penalty
            logs["r1"] = penalty.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        loss_g = self.g_loss(self.D(self.d_view(fake), y))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self._update_ema()

        logs["loss_g"] = loss_g.detach()
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        return loss_d + loss_g

    def validation_step(self, batch, batch_idx):
        x, y = batch
        y = y if self.num_classes else None
        d_real = self.D(x * 2.0 - 1.0, y)
        self.log("val_d_real_acc", (d_real > 0).float().mean(), batch_size=x.shape[0])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        decay = self.params.ema_decay
        # warm start: early on the EMA follows closely, so short runs still sample well
        decay = min(decay, (1 + self.iteration) / (10 + self.iteration))
        for ema_p, p in zip(self.G_ema.parameters(), self.G.parameters()):
            ema_p.lerp_(p, 1.0 - decay)
        for ema_b, b in zip(self.G_ema.buffers(), self.G.buffers()):
            ema_b.copy_(b)

    # -- generation ---------------------------------------------------------------------------
    def latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Sample i's latent depends on (seed, i) alone: batches and shards cannot change it."""
        out = torch.empty(n, self.params.latent)
        g = torch.Generator()
        for i in range(n):
            g.manual_seed(sample_seed(seed, start + i))
            out[i] = torch.randn(self.params.latent, generator=g)
        return out

    @torch.no_grad()
    def generate(self, n: int, seed: int = 0, label: Optional[int] = None, use_ema: bool = True,
                 batch_size: int = 64, start: int = 0, truncation: float = 1.0) -> Content:
        """Samples ``start .. start+n-1``. Work is done in chunks aligned to multiples of
        ``batch_size`` and padded to full size, so a sample's bytes never depend on ``n``,
        ``start`` or how a sharded job split the range (convolution kernels differ by batch shape)."""
        if label is not None and (not self.num_classes or label >= self.num_classes):
            classes = self.num_classes or "no"
            raise ConfigError("generate.label", f"label {label} is not a class this model was trained on ({classes} classes)")
        net = self.G_ema if (use_ema and self.G_ema is not None) else self.G
        was_training = net.training
        net.eval()
        items: list[Item] = []
        end = start + n
        try:
            for lo in range((start // batch_size) * batch_size, end, batch_size):
                check_cancelled()  # a server that gave up on this request stops it here
                z = self.latents(batch_size, seed, lo).to(self.device) * truncation
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
        finally:
            net.train(was_training)
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
