"""How the mel-vocoder learns, the HiFi-GAN way, as a LightningModule around ``MelVocoder``
(``vocoder.py``).

Random crops of ``segment_frames`` mel frames; first ``gan_start_steps`` steps on the
multi-resolution STFT distance alone (a dense gradient; or the magnitude loss, ``magnitude_weight``),
then least-squares adversarial losses from multi-period (2, 3, 5, 7, 11) and multi-scale
(x1, x2, x4) discriminators plus feature matching. The discriminators live here, not in the
generator: only training needs them, so a finished run (and a spectrogram generator carrying
the vocoder) never builds them. Only ``aigc run`` imports this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import GeneratorTraining

from .stft_distance import stft_distance
from .vocoder import SIZES, MelVocoder

PERIODS = (2, 3, 5, 7, 11)


def _wn(module: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.weight_norm(module)


class PeriodDiscriminator(nn.Module):
    """Looks at every p-th sample as a 2-D image: catches periodic (pitch) structure."""

    def __init__(self, period: int, width: int):
        super().__init__()
        self.period = period
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        self.convs = nn.ModuleList(_wn(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 3 else 1, 1), padding=(2, 0)))
                                   for i in range(4))
        self.post = _wn(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor):
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, 1, -1, self.period)
        return _scores_and_features(self.convs, self.post, x)


def _scores_and_features(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor):
    """Both discriminator kinds return their scores and every layer's output (for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over the waveform at one sample rate."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.convs = nn.ModuleList([
            _wn(nn.Conv1d(1, w, 15, 1, padding=7)),
            _wn(nn.Conv1d(w, 2 * w, 41, 4, padding=20, groups=4)),
            _wn(nn.Conv1d(2 * w, 4 * w, 41, 4, padding=20, groups=4)),
            _wn(nn.Conv1d(4 * w, 4 * w, 5, 1, padding=2)),
        ])
        self.post = _wn(nn.Conv1d(4 * w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor):
        x = x.unsqueeze(1)
        return _scores_and_features(self.convs, self.post, x)


class Discriminators(nn.Module):
    def __init__(self, kind: str, width: int):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, width) for p in PERIODS) if "mpd" in kind else nn.ModuleList()
        self.scales = nn.ModuleList(ScaleDiscriminator(width) for _ in range(3)) if "msd" in kind else nn.ModuleList()

    def forward(self, wave: torch.Tensor):
        outs = [d(wave) for d in self.periods]
        x = wave
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool1d(x.unsqueeze(1), 4, 2, padding=2).squeeze(1)
            outs.append(d(x))
        return outs  # [(scores, features), ...]


class MelVocoderTraining(GeneratorTraining):
    generator: MelVocoder

    def __init__(self, generator: MelVocoder):
        super().__init__(generator)
        self.automatic_optimization = False
        p = generator.params
        self.segment_frames = max(2, min(p.segment_frames, generator.num_samples // p.hop_length))
        disc_width = SIZES[p.size][2] if p.width is None else 4 * max(1, p.width // 64)
        self.discriminators = Discriminators(p.discriminator, disc_width) if p.discriminator != "none" else None

    def on_fit_start(self) -> None:
        """Previews during training re-synthesise clips of the data being trained on."""
        datamodule = getattr(self.trainer, "datamodule", None)
        self.generator.preview_data = getattr(datamodule, "source", datamodule)

    def on_fit_end(self) -> None:
        self.generator.preview_data = None

    def crops(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random aligned (mel, waveform) crops, drawn where each clip has sound (clips are
        zero-padded to a fixed length; crops of digital silence would teach little)."""
        hop, frames = self.params.hop_length, self.segment_frames
        with torch.no_grad():
            mel = self.generator.features.log_mel(wave)
        loud = wave.abs() > 1e-4
        last = torch.where(loud.any(1), wave.shape[1] - 1 - loud.flip(1).float().argmax(1), torch.zeros_like(loud[:, 0], dtype=torch.long))
        limit = (self.generator.num_samples - frames * hop) // hop
        max_start = (last // hop - frames).clamp(0, max(limit, 0))
        start = (torch.rand(len(wave), device=wave.device) * (max_start + 1).float()).long()
        mels = torch.stack([mel[i, :, s:s + frames] for i, s in enumerate(start.tolist())])
        waves = torch.stack([wave[i, s * hop:(s + frames - 1) * hop] for i, s in enumerate(start.tolist())])
        return mels, waves

    def magnitude_distance(self, spec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L1 between log magnitudes of the predicted spectrum (before the inverse STFT) and the
        target's STFT: a dense, phase-free signal for the magnitude, which then stays a
        consistent spectrogram that Griffin-Lim refinement can work with. The two frames at each
        edge of a crop are left out (the crop's own STFT pads there, the mel did not)."""
        true = torch.stft(target, self.params.n_fft, self.params.hop_length, self.params.n_fft, self.generator.net.window,
                          center=True, return_complex=True)
        frames = min(spec.shape[-1], true.shape[-1])
        edge = 2 if frames > 8 else 0
        est = spec[..., edge:frames - edge].abs().clamp_min(1e-4).log()
        ref = true[..., edge:frames - edge].abs().clamp_min(1e-4).log()
        return (est - ref).abs().mean()

    def _set_lr(self, optimizers, batch_idx: int) -> None:
        """Progress is counted in batches, not in global_step: with the discriminators on, two
        optimisers step per batch."""
        if self.params.lr_schedule != "cosine" or self._trainer is None:
            return
        total = max(1, int(self.trainer.estimated_stepping_batches))
        done = self.current_epoch * int(self.trainer.num_training_batches) + batch_idx
        lr = self.params.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, done / total)))
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def training_step(self, batch, batch_idx):
        wave, _ = batch
        p = self.params
        self._set_lr(self.optimizers(), batch_idx)
        mel, target = self.crops(wave)
        spec = self.generator.net.spectrum(mel)
        opt_g, opt_d = self.optimizers()
        adversarial = self.discriminators is not None and self.global_step >= p.gan_start_steps
        # with only the magnitude loss on, the waveform is made for the log alone, without a graph
        wave_losses = adversarial or bool(p.stft_weight)
        with torch.set_grad_enabled(wave_losses):
            fake = self.generator.net._istft(spec if wave_losses else spec.detach(), target.shape[1])
        logs = {}
        if adversarial:
            loss_d = 0.0
            for (real_score, _), (fake_score, _) in zip(self.discriminators(target), self.discriminators(fake.detach())):
                loss_d = loss_d + (1 - real_score).pow(2).mean() + fake_score.pow(2).mean()
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()
            logs["loss_d"] = loss_d.detach()
        with torch.set_grad_enabled(wave_losses):
            stft = stft_distance(fake, target, self.generator.sample_rate)
        loss_g = p.stft_weight * stft if wave_losses else mel.new_zeros(())
        if p.magnitude_weight:
            magnitude = self.magnitude_distance(spec, target)
            loss_g = loss_g + p.magnitude_weight * magnitude
            logs["loss_magnitude"] = magnitude.detach()
        if adversarial:
            with torch.no_grad():
                real_feats = [feats for _, feats in self.discriminators(target)]
            adv, fm = 0.0, 0.0
            for (score, feats), reals in zip(self.discriminators(fake), real_feats):
                adv = adv + (1 - score).pow(2).mean()
                fm = fm + sum(F.l1_loss(f, r) for f, r in zip(feats, reals))
            loss_g = loss_g + p.adversarial_weight * adv + p.feature_match_weight * fm
            logs["loss_adv"] = adv.detach()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        logs.update({"loss": loss_g.detach(), "loss_stft": stft.detach()})
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(wave))
        return loss_g

    def validation_step(self, batch, batch_idx):
        wave, _ = batch
        net = self.generator.net
        spec = net.spectrum(self.generator.features.log_mel(wave))
        self.log("val_loss", stft_distance(net._istft(spec, wave.shape[1]), wave, self.generator.sample_rate),
                 batch_size=len(wave))
        if self.params.magnitude_weight:
            self.log("val_magnitude", self.magnitude_distance(spec, wave), batch_size=len(wave))

    def configure_optimizers(self):
        opt_g = torch.optim.AdamW(self.generator.net.parameters(), lr=self.params.lr, betas=(0.8, 0.99))
        disc = list(self.discriminators.parameters()) if self.discriminators is not None else [nn.Parameter(torch.zeros(1))]
        opt_d = torch.optim.AdamW(disc, lr=self.params.lr, betas=(0.8, 0.99))
        return [opt_g, opt_d]
