"""How the causal LM learns: next-token cross-entropy, AdamW with warm-up and a cosine schedule.

A LightningModule around ``CausalLM``; only ``aigc run`` imports it. The Trainer sees the text
source tokenised by the generator's own tokenizer (``TokenDataModule``), cut to its context.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from aigc_core import GeneratorTraining

from .data import TokenDataModule
from .model import CausalLM


class CausalLMTraining(GeneratorTraining):
    generator: CausalLM

    def datamodule(self, source):
        return TokenDataModule(source, self.generator.tokenizer, self.generator.context, source.seed)

    def _loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.generator.model(input_ids=batch[:, :-1]).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=len(batch))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), prog_bar=True, on_epoch=True, batch_size=len(batch))

    def configure_optimizers(self):
        p = self.params
        model = self.generator.model
        decay = [q for q in model.parameters() if q.requires_grad and q.dim() >= 2]
        rest = [q for q in model.parameters() if q.requires_grad and q.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=p.lr, betas=(p.beta1, p.beta2))
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        floor = p.min_lr / p.lr

        def factor(step: int) -> float:
            if step < p.warmup_steps:
                return (step + 1) / (p.warmup_steps + 1)
            if p.schedule == "constant":
                return 1.0
            progress = min(1.0, (step - p.warmup_steps) / max(1, total - p.warmup_steps))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
