"""What trains a ``stylegan`` generator (a LightningModule; imported only when training).

It owns the networks and state only training needs: the generator weights the optimiser updates
(the component's ``G`` is their EMA), the residual discriminator, the adaptive augmentation with
its p, and the running mean of the path length. Losses are StyleGAN2's: the non-saturating
logistic loss, R1 on real images every ``r1_every`` steps (lazy regularisation), style-mixing
regularisation (some batches draw two latents and switch at a random layer), and optionally the
path-length regulariser. Everything above is in the module's state, so a Lightning checkpoint
resumes it, p included.
"""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from aigc_core import GeneratorTraining

from .ada import AdaptiveAugment
from .stylegan_net import Discriminator, mix_styles


def d_logistic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()


def g_nonsaturating_loss(d_fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-d_fake).mean()


def r1_penalty(d_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """Squared norm of D's gradient at the real images (Mescheder et al. 2018), mean over the batch."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def mode_seeking_penalty(images: torch.Tensor, ws: torch.Tensor, eps: float = 1e-5):
    """Mode seeking (Mao et al. 2019): pairs (i, i + N/2) should differ in the image as much as in
    their styles. Returns 1 / (mean image distance / mean style distance), and that ratio.

    Issue 25's collapse had two stages. The early one (a few hundred iterations) came from a
    discriminator learning too slowly (``lr_d``), and this did not cure it. With ``lr_d`` fixed, the
    synthesis network still learnt, over the next ~1,000 iterations, to ignore the part of w that z
    sets (w kept varying with z; the images did not), whatever the augmentation, noise inputs, R1
    interval or minibatch grouping. This term is what counters exactly that: it is on by default."""
    half = images.shape[0] // 2
    image_distance = (images[:half] - images[half:2 * half]).abs().flatten(1).mean(1)
    style_distance = (ws[:half] - ws[half:2 * half]).abs().flatten(1).mean(1)
    ratio = (image_distance / (style_distance + eps)).mean()
    return 1.0 / (ratio + eps), ratio.detach()


def path_length_penalty(images: torch.Tensor, ws: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01):
    """StyleGAN2's path-length regulariser: a fixed-size step in W should move the image by a fixed
    amount, whatever the direction. Returns the penalty and updates ``pl_mean`` in place."""
    h, w = images.shape[2:]
    noise = torch.randn_like(images) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    with torch.no_grad():
        pl_mean.lerp_(lengths.mean().to(pl_mean.dtype), decay)
    return (lengths - pl_mean).square().mean(), lengths.mean().detach()


class StyleGANTraining(GeneratorTraining):
    def __init__(self, generator):
        super().__init__(generator)
        self.automatic_optimization = False
        p = self.params
        channels, size, _ = generator.shape
        #: the weights the optimiser moves; the component's G follows them as an EMA
        self.G = copy.deepcopy(generator.G).requires_grad_(True)
        self.D = Discriminator(channels, size, p.widths, generator.num_classes, p.mbstd_group)
        self.ada = AdaptiveAugment(p.augment, p.augment_p, p.ada_target, p.ada_kimg, p.ada_interval, p.augment_ops)
        self.register_buffer("pl_mean", torch.zeros(()))

    @property
    def iteration(self) -> int:
        """Training iterations so far: Lightning counts each of the two optimiser steps as a global step."""
        return self.global_step // 2

    def configure_optimizers(self):
        p = self.params

        def adam(params, lr, every):
            # lazy regularisation: the regularised steps come every ``every`` steps, so the
            # optimiser's lr and betas are corrected as StyleGAN2 does
            ratio = every / (every + 1) if every > 1 else 1.0
            return torch.optim.Adam(params, lr=lr * ratio, betas=(p.beta1 ** ratio, p.beta2 ** ratio))

        opt_g = adam(self.G.parameters(), p.lr_g, p.pl_every if p.pl_weight > 0 else 1)
        opt_d = adam(self.D.parameters(), p.lr_d, p.r1_every if p.r1_gamma > 0 else 1)
        return opt_g, opt_d

    def sample_ws(self, n: int, y):
        """Styles for a batch: one w per sample, or with probability ``mix_prob`` two, switching at
        a random layer (style-mixing regularisation: neighbouring layers must not rely on sharing a w)."""
        G = self.G
        z = torch.randn(n, G.z_dim, device=self.device)
        w = G.mapping(z, y)
        G.mapping.track(w, y, self.params.w_avg_beta)
        if self.params.mix_prob > 0 and float(torch.rand(())) < self.params.mix_prob:
            crossover = int(torch.randint(1, G.num_ws, ()))
            return mix_styles(w, G.mapping(torch.randn_like(z), y), crossover, G.num_ws)
        return G.broadcast(w)

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x * 2.0 - 1.0  # the generator's own preprocessing: data in [0, 1], model in [-1, 1]
        y = y if self.generator.num_classes else None
        p = self.params
        it = self.iteration
        opt_g, opt_d = self.optimizers()
        n = x.shape[0]

        y_fake = y
        if p.diversity_weight > 0 and y is not None and n > 1:
            half = n // 2  # pairs (i, i + half) of one class: their difference is style, not class
            y_fake = torch.cat([y[:half], y[:half], y[2 * half:]])
        ws = self.sample_ws(n, y_fake)
        fake = self.G.synthesis(ws)

        # -- discriminator: logistic loss, lazy R1 on (augmented) real images --------------------
        self.D.requires_grad_(True)
        r1 = p.r1_gamma > 0 and it % p.r1_every == 0
        x_real = x.detach().requires_grad_(r1)
        d_real = self.D(self.ada(x_real), y)
        d_fake = self.D(self.ada(fake.detach()), y_fake)
        self.ada.observe(d_real)
        loss_d = d_logistic_loss(d_real, d_fake)
        logs = {"loss_d": loss_d.detach()}
        if r1:
            penalty = r1_penalty(d_real, x_real)
            loss_d = loss_d + penalty * (0.5 * p.r1_gamma * p.r1_every)
            logs["r1"] = penalty.detach()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        # -- generator: non-saturating loss, mode seeking, optional lazy path-length regulariser ---
        self.D.requires_grad_(False)  # D's weight gradients are not needed here
        loss_g = g_nonsaturating_loss(self.D(self.ada(fake), y_fake))
        logs["loss_g"] = loss_g.detach()
        if p.diversity_weight > 0 and n > 1:
            penalty, ratio = mode_seeking_penalty(fake, ws)
            loss_g = loss_g + p.diversity_weight * penalty
            logs["image_per_style_distance"] = ratio
        if p.pl_weight > 0 and it % p.pl_every == 0:
            half = max(1, n // 2)
            ws = self.sample_ws(half, None if y is None else y[:half])
            penalty, length = path_length_penalty(self.G.synthesis(ws), ws, self.pl_mean)
            loss_g = loss_g + penalty * (p.pl_weight * p.pl_every)
            logs["pl"], logs["pl_length"] = penalty.detach(), length
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.D.requires_grad_(True)
        self.update_ema()

        logs["ada_p"] = self.ada.p.float()
        if self.ada.measured:
            logs["ada_r_t"] = self.ada.r_t.float()
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        return loss_d.detach() + loss_g.detach()

    def validation_step(self, batch, batch_idx):
        """r_v: the share of held-out real images D calls real (sign of its logit): next to r_t, how
        much D has memorised the training images."""
        x, y = batch
        y = y if self.generator.num_classes else None
        d = self.D(x * 2.0 - 1.0, y)
        self.log("val_r_v", torch.sign(d).mean(), batch_size=x.shape[0])

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = self.params.ema_decay
        # warm start: early on the EMA follows closely, so short runs still sample well
        decay = min(decay, (1 + self.iteration) / (10 + self.iteration))
        for ema_p, q in zip(self.generator.G.parameters(), self.G.parameters()):
            ema_p.lerp_(q, 1.0 - decay)
        for ema_b, b in zip(self.generator.G.buffers(), self.G.buffers()):
            ema_b.copy_(b)
