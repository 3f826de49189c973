"""How a DCGAN learns: the discriminator, the losses, R1 and the EMA update, as a LightningModule.

The science is here and the engineering in Lightning's Trainer. Two optimisers under manual
optimisation (Lightning 2's way), hinge or BCE-with-logits losses, lazy R1 on real images, and an
EMA copy of the generator that does the sampling. Only ``aigc run`` imports this module; the
networks that sample live in ``model.py``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from aigc_core import GeneratorTraining

from .augment import augment
from .model import DCGAN, DiscriminatorNet, dcgan_init


class DCGANTraining(GeneratorTraining):
    generator: DCGAN

    def __init__(self, generator: DCGAN):
        super().__init__(generator)
        self.automatic_optimization = False
        p = generator.params
        channels, height, _ = generator.info["shape"]
        self.D = DiscriminatorNet(p.width, channels, height, generator.num_classes, p.spectral_norm, p.minibatch_std)
        self.D.apply(dcgan_init)
        #: What D sees is augmented with these (``augment``; ``base_augment`` when adapting a base).
        self.policy = p.augmentations

    def adopt_base(self, base) -> None:
        """A few images cannot teach a discriminator from nothing, and a fresh one gives the adapted
        generator no useful signal: D starts from the base run's (its last training checkpoint), and
        what it sees is augmented (``base_augment``) unless the config chose ``augment`` itself."""
        import sys

        from aigc_core import ConfigError

        if not self.policy:
            self.policy = [a.strip() for a in self.params.base_augment.split(",") if a.strip()]
        state = base.training_state() if base is not None else None
        if state is None:
            print("aigc: note: the base kept no training checkpoint; the discriminator starts from scratch",
                  file=sys.stderr)
            return
        d_state = {k[2:]: v for k, v in state.items() if k.startswith("D.")}
        try:
            self.D.load_state_dict(d_state, strict=True)
        except RuntimeError as exc:
            raise ConfigError("generator.base", f"the base run's discriminator does not fit this dcgan "
                                                f"({str(exc).strip().splitlines()[0]})") from None

    def configure_optimizers(self):
        p = self.params
        opt_g = torch.optim.Adam(self.generator.G.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2))
        opt_d = torch.optim.Adam(self.D.parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2))
        return opt_g, opt_d

    @property
    def iteration(self) -> int:
        """Training iterations so far: Lightning counts each of the two optimiser steps as a global step."""
        return self.global_step // 2

    def d_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees: the image, augmented when the config asks (real and fake alike)."""
        return augment(x, self.policy) if self.policy else x

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
        if x.shape[0] == 1:
            # Batch norm needs two values per channel: a lone image (the last batch of a few-shot
            # split that leaves one over, or batch_size 1) is seen twice rather than crash or be lost.
            x, y = x.repeat(2, 1, 1, 1), y.repeat(2)
        x = x * 2.0 - 1.0  # the generator's own preprocessing: data in [0, 1], model in [-1, 1]
        y = y if self.generator.num_classes else None
        p = self.params
        opt_g, opt_d = self.optimizers()
        n = x.shape[0]
        z = torch.randn(n, p.latent, device=self.device)

        fake = self.generator.G(z, y)
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
        y = y if self.generator.num_classes else None
        d_real = self.D(x * 2.0 - 1.0, y)
        self.log("val_d_real_acc", (d_real > 0).float().mean(), batch_size=x.shape[0])

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema, live = self.generator.G_ema, self.generator.G
        if ema is None:
            return
        decay = self.params.ema_decay
        # warm start: early on the EMA follows closely, so short runs still sample well
        decay = min(decay, (1 + self.iteration) / (10 + self.iteration))
        for ema_p, p in zip(ema.parameters(), live.parameters()):
            ema_p.lerp_(p, 1.0 - decay)
        for ema_b, b in zip(ema.buffers(), live.buffers()):
            ema_b.copy_(b)

