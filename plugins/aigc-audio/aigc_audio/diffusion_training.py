"""How mel-diffusion learns: aigc-diffusion's shared denoiser training (AdamW, min-SNR loss, EMA
step, the Lightning hooks) on waveforms mapped into diffusion space by the generator's own mel
analysis. Only training imports this module; ``aigc_audio.diffusion`` samples without it.
"""

from __future__ import annotations

import torch

from aigc_diffusion.training import DenoiserTraining, denoising_loss

from .diffusion import MelDiffusion


class MelDiffusionTraining(DenoiserTraining):
    generator: MelDiffusion

    def diffusion_loss(self, wave: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None,
                       drop: float = 0.0) -> torch.Tensor:
        """Loss of a batch of (B, samples) waveforms: their normalised log-mels, kept inside the
        [-1, 1] that sampling clips to, at random noise levels."""
        g = self.generator
        x = g.encode_input(wave).clamp(-1.0, 1.0)
        labels = y.long().clamp(0, g.conditioned - 1) if g.conditioned else None
        return denoising_loss(g.unet, g.noise_scheduler, x, labels, g.conditioned,
                              generator=generator, drop=drop, snr_gamma=self.params.snr_gamma)
