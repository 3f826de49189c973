"""How a VAE learns: the beta-weighted negative ELBO, its KL warm-up and Adam, as a LightningModule.

Only ``aigc run`` imports this module (it imports Lightning); the networks, the ELBO and the
sampling are in ``model.py``, which a finished run loads alone.
"""

from __future__ import annotations

import torch

from aigc_core import GeneratorTraining

from .model import VAE


class VAETraining(GeneratorTraining):
    generator: VAE

    def configure_optimizers(self):
        p = self.params
        return torch.optim.Adam(self.generator.parameters(), lr=p.lr, weight_decay=p.weight_decay)

    def beta_now(self) -> float:
        """beta, ramped linearly from 0 over ``kl_warmup_steps`` optimiser steps."""
        warm = self.params.kl_warmup_steps
        ramp = 1.0 if warm <= 0 else min(1.0, self.global_step / warm)
        return self.params.beta * ramp

    def training_step(self, batch, batch_idx):
        vae = self.generator
        x, y = batch
        x = vae.prepare(x, train=True)
        rec, kl = vae.elbo_terms(x, y)
        beta = self.beta_now()
        loss = (beta * kl - rec).mean()
        self.log_dict({"loss": loss.detach(), "kl": kl.mean().detach(), "beta": beta}, prog_bar=True,
                      on_step=True, on_epoch=False, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        vae = self.generator
        x, y = batch
        x = vae.prepare(x, train=False, offset=batch_idx * x.shape[0])
        rec, kl = vae.elbo_terms(x, y)
        n = x.shape[0]
        self.log_dict({"val_elbo": (rec - kl).mean(), "val_kl": kl.mean(), "val_rec": rec.mean()},
                      prog_bar=True, batch_size=n)
