"""How the mel VAE learns: the reconstruction and KL losses, the KL warm-up, Adam, and the class
prior fitted when training ends, as a LightningModule around ``MelVAE`` (``model.py``).

Only ``aigc run`` imports this module; a finished run generates from ``model.py`` alone.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from aigc_core import GeneratorTraining

from .mel_base import split_tensors
from .model import MelVAE


class MelVAETraining(GeneratorTraining):
    generator: MelVAE

    def losses(self, batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Summed squared reconstruction error per clip and the KL term, batch means; and the batch size."""
        wave, y = batch
        gen = self.generator
        y = y.clamp(0, gen.num_classes - 1)
        x = gen.encode_input(wave)
        recon, mu, logvar = gen(x, y)
        rec = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()
        return rec, kl, x.shape[0]

    def training_step(self, batch, batch_idx):
        rec, kl, n = self.losses(batch)
        warm = self.params.kl_warmup_steps
        beta = self.params.kl_weight * (min(1.0, (self.global_step + 1) / warm) if warm else 1.0)
        loss = rec + beta * kl
        self.log_dict({"loss": loss.detach(), "loss_rec": rec.detach(), "kl": kl.detach()}, prog_bar=True,
                      on_step=True, on_epoch=False, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        rec, kl, n = self.losses(batch)
        self.log("val_loss", rec + self.params.kl_weight * kl, batch_size=n)

    def on_fit_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        source = getattr(datamodule, "source", datamodule)  # the data source inside Lightning's wrapper
        if self.params.prior == "class" and source is not None:
            waves, labels = split_tensors(source.split("train"))
            self.generator.fit_class_prior(waves, labels)

    def configure_optimizers(self):
        gen = self.generator
        return torch.optim.Adam(list(gen.encoder.parameters()) + list(gen.decoder.parameters()), lr=self.params.lr)
