"""How a denoising diffusion model learns: the loss, the min-SNR weights, the EMA step and the
Lightning hooks, shared by every denoising generator. PUBLIC API of aigc-diffusion, like
``denoiser``: aigc-audio's ``mel-diffusion`` trains with ``DenoiserTraining`` too.

Only training imports this module (and with it Lightning); the networks that sample and the
sampling loop are ``aigc_diffusion.denoiser``, so a finished run generates without it.

* ``denoising_loss``: noise of a random strength, the net predicts it (or v); labels dropped
  to the null class with probability ``drop``; ``snr_weight`` weights each sample (min-SNR).
* ``update_ema``: one step of the EMA copy that samples, with a warm start.
* ``DenoiserTraining``: AdamW, the training and validation losses and the EMA step around any
  generator with ``unet``, ``unet_ema`` (or None) and ``params`` with ``lr``, ``weight_decay``,
  ``label_dropout`` and ``ema_decay``; a subclass adds only how a batch maps into diffusion
  space (``diffusion_loss``). ``DDPMTraining`` is the image one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import GeneratorTraining

if TYPE_CHECKING:
    from .model import DDPM


def denoising_loss(net: nn.Module, noise_scheduler, x: torch.Tensor, labels: torch.Tensor | None, num_classes: int,
                   generator: torch.Generator | None = None, drop: float = 0.0,
                   snr_gamma: float | None = None) -> torch.Tensor:
    """Noise-prediction (or v-prediction) loss of a batch already in diffusion space [-1, 1], at
    random noise levels; ``labels`` None for an unconditional net. ``snr_gamma``: min-SNR
    weighting (Hang et al., 2023), which stops the nearly clean, easy noise levels from pulling
    the shared weights against the noisy ones that shape the image; it converges several times
    faster, which is what a CPU budget needs."""
    n = x.shape[0]
    steps = noise_scheduler.config.num_train_timesteps
    noise = torch.randn(x.shape, generator=generator).to(x)
    t = torch.randint(0, steps, (n,), generator=generator).to(x.device)
    if labels is not None and drop > 0:
        dropped = torch.rand(n, generator=generator).to(x.device) < drop
        labels = torch.where(dropped, torch.full_like(labels, num_classes), labels)
    noisy = noise_scheduler.add_noise(x, noise, t)
    pred = net(noisy, t, class_labels=labels).sample
    epsilon = noise_scheduler.config.prediction_type == "epsilon"
    target = noise if epsilon else noise_scheduler.get_velocity(x, noise, t)
    if not snr_gamma:
        return F.mse_loss(pred, target)
    return (F.mse_loss(pred, target, reduction="none").flatten(1).mean(1) * snr_weight(noise_scheduler, t, snr_gamma)).mean()


def snr_weight(noise_scheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR, gamma) in the units of the net's target: / SNR for noise, / (SNR + 1) for v."""
    alpha_bar = noise_scheduler.alphas_cumprod.to(t.device)[t].float()
    snr = alpha_bar / (1.0 - alpha_bar)
    if noise_scheduler.config.prediction_type == "epsilon":
        return (gamma / snr).clamp(max=1.0)  # min(SNR, gamma) / SNR, finite where SNR is 0
    return snr.clamp(max=gamma) / (snr + 1.0)


@torch.no_grad()
def update_ema(ema: nn.Module | None, net: nn.Module, decay: float, step: int) -> None:
    """One EMA step; warm start: early on the EMA follows closely, so short runs still sample well."""
    if ema is None:
        return
    decay = min(decay, (1 + step) / (10 + step))
    for ema_p, p in zip(ema.parameters(), net.parameters()):
        ema_p.lerp_(p, 1.0 - decay)


class DenoiserTraining(GeneratorTraining):
    """Trains a denoising generator (``self.generator``: ``unet``, ``unet_ema``, ``params``). A
    batch is ``(inputs, labels)``; subclasses implement ``diffusion_loss(inputs, labels,
    generator=None, drop=0.0)``, the one thing that differs: how their batch maps into diffusion
    space, usually a call of ``denoising_loss``."""

    def diffusion_loss(self, inputs: torch.Tensor, labels: torch.Tensor | None,
                       generator: torch.Generator | None = None, drop: float = 0.0) -> torch.Tensor:
        raise NotImplementedError

    def configure_optimizers(self):
        return torch.optim.AdamW(self.generator.unet.parameters(), lr=self.params.lr,
                                 weight_decay=self.params.weight_decay)

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        loss = self.diffusion_loss(inputs, labels, drop=self.params.label_dropout)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=inputs.shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        update_ema(self.generator.unet_ema, self.generator.unet, self.params.ema_decay, self.global_step)

    def validation_step(self, batch, batch_idx):
        inputs, labels = batch
        # fixed noise per batch: the validation loss moves only when the model does
        g = torch.Generator().manual_seed(batch_idx)
        self.log("val_loss", self.diffusion_loss(inputs, labels, generator=g), batch_size=inputs.shape[0])


class DDPMTraining(DenoiserTraining):
    """``ddpm``'s training: images in [0, 1] map to diffusion's [-1, 1]."""
    generator: DDPM

    def diffusion_loss(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None,
                       drop: float = 0.0) -> torch.Tensor:
        """Noise-prediction loss of a batch in [0, 1], at random noise levels."""
        g = self.generator
        labels = y.long() if g.num_classes else None
        # the model's own scale: data in [0, 1], diffusion in [-1, 1]
        return denoising_loss(g.unet, g.noise_scheduler, x * 2.0 - 1.0, labels, g.num_classes,
                              generator=generator, drop=drop, snr_gamma=self.params.snr_gamma)
