"""A class-conditional VAE of log-mel spectrograms, as a LightningModule.

Waveform -> log-mel (torchaudio) -> normalised by the training set's mean and spread -> encoder
(three stride-2 convolutions) -> q(z | x, class) -> decoder (mirror image) -> log-mel. Sampling
draws z from N(0, I) per sample seed, decodes with the asked class and vocodes with
a trained neural vocoder (``generator.vocoder``: a finished mel-vocoder run, copied into this
model's checkpoint so a run stays self-contained) or, without one, InverseMelScale + Griffin-Lim.
docs/audio.md argues why a VAE rather than a GAN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, check_cancelled, sample_seed

from .features import MelFeatures, default_n_fft
from .vocoder import MelVocoderParams, VocoderNet, griffin_lim_notice, load_vocoder_run

SIZES = {"debug": (4, 8), "small": (16, 16), "base": (32, 32)}  # width, latent



def split_tensors(dataset, limit: int | None = None):
    """Waveforms and labels of a split as two tensors, from any audio source: the core's sources
    hold them as ``waves``/``labels``; others are read item by item (``(waveform, label)``)."""
    if hasattr(dataset, "waves") and hasattr(dataset, "labels"):
        return dataset.waves[:limit], dataset.labels[:limit]
    count = len(dataset) if limit is None else min(limit, len(dataset))
    pairs = [dataset[i] for i in range(count)]
    if not pairs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    waves = torch.stack([torch.as_tensor(w, dtype=torch.float32) for w, _ in pairs])
    labels = torch.as_tensor([int(y) for _, y in pairs], dtype=torch.long)
    return waves, labels

@dataclass
class MelVAEParams:
    size: Literal["debug", "small", "base"] = "small"  # preset sizes; debug is for fast tests
    latent_dim: Optional[int] = None  # default from size: 8 / 16 / 32
    width: Optional[int] = None  # channels of the first convolution; default from size: 4 / 16 / 32
    sample_rate: Optional[int] = None  # default: the data's; set it to insist on one
    n_mels: int = 64  # mel bands of the spectrogram
    n_fft: Optional[int] = None  # default: about 64 ms at the sample rate
    hop_length: Optional[int] = None  # default: n_fft / 4
    griffin_lim_iters: int = 32  # Griffin-Lim iterations when turning spectrograms back into sound
    kl_weight: float = 4.0  # at 1 the latent carried the class and prior samples lost it (docs/benchmarks.md)
    kl_warmup_steps: int = 300  # the KL weight ramps up from 0, so early steps learn to reconstruct
    lr: float = 1e-3  # learning rate (Adam)
    vocoder: Optional[str] = None  # a finished mel-vocoder run directory (e.g. runs/vocoder-fsdd); none: Griffin-Lim

    def validate(self) -> None:
        if self.vocoder is not None and not str(self.vocoder).strip():
            raise ValueError("vocoder: must name a mel-vocoder run directory, or be left out")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError("latent_dim: must be at least 1")
        if self.width is not None and self.width < 1:
            raise ValueError("width: must be at least 1")
        if self.sample_rate is not None and not 1000 <= self.sample_rate <= 192000:
            raise ValueError("sample_rate: must be between 1000 and 192000 Hz")
        if self.n_mels < 8 or self.n_mels % 8:
            raise ValueError("n_mels: must be a multiple of 8, at least 8")
        if self.n_fft is not None and self.n_fft < 16:
            raise ValueError("n_fft: must be at least 16")
        if self.hop_length is not None and self.hop_length < 1:
            raise ValueError("hop_length: must be at least 1")
        if self.griffin_lim_iters < 1:
            raise ValueError("griffin_lim_iters: must be at least 1")
        if self.kl_weight < 0:
            raise ValueError("kl_weight: must be 0 or more")
        if self.kl_warmup_steps < 0:
            raise ValueError("kl_warmup_steps: must be 0 or more")
        if self.lr <= 0:
            raise ValueError("lr: must be positive")

    @property
    def channels(self) -> int:
        return self.width or SIZES[self.size][0]

    @property
    def latent(self) -> int:
        return self.latent_dim or SIZES[self.size][1]


@dataclass
class MelVAEOptions:
    label: Optional[str] = None  # a class name or index; default: cycle through the classes
    temperature: float = 1.0  # scale of the prior's noise; below 1 trades variety for typicality
    batch_size: int = 64  # clips generated per call of the decoder loop

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature: must be in [0, 2]")


class Encoder(nn.Module):
    def __init__(self, width: int, latent: int, grid: tuple[int, int], num_classes: int):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.embed = nn.Embedding(num_classes, 16)
        self.out = nn.Linear(4 * w * grid[0] * grid[1] + 16, 2 * latent)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.body(x), self.embed(y)], 1)
        mu, logvar = self.out(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class Decoder(nn.Module):
    def __init__(self, width: int, latent: int, grid: tuple[int, int], num_classes: int):
        super().__init__()
        w = width
        self.grid = grid
        self.top = 4 * w
        self.embed = nn.Embedding(num_classes, 16)
        self.project = nn.Sequential(nn.Linear(latent + 16, 4 * w * grid[0] * grid[1]), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(w, 1, 4, 2, 1),  # full resolution stays one channel: CPU time
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(y)], 1)).view(-1, self.top, *self.grid)
        return self.body(h)


class MelVAE(Generator):
    modality = "audio"
    shards = True
    Params = MelVAEParams
    GenerateOptions = MelVAEOptions

    def __init__(self, params: MelVAEParams, info: dict):
        super().__init__(params, info)
        self.sample_rate = int(info["sample_rate"])
        self.num_samples = int(info["num_samples"])
        self.classes = [str(c) for c in (info.get("classes") or ["all"])]
        self.num_classes = max(1, int(info.get("num_classes") or 1))
        n_fft = params.n_fft or default_n_fft(self.sample_rate)
        hop = params.hop_length or n_fft // 4
        try:
            self.features = MelFeatures(self.sample_rate, params.n_mels, n_fft, hop, params.griffin_lim_iters)
        except ValueError as exc:
            raise ConfigError("generator." + str(exc).split(":")[0], str(exc).split(": ", 1)[1]) from None
        self.frames = self.features.frames(self.num_samples)
        self.padded_frames = int(math.ceil(self.frames / 8) * 8)
        grid = (params.n_mels // 8, self.padded_frames // 8)
        self.encoder = Encoder(params.channels, params.latent, grid, self.num_classes)
        self.decoder = Decoder(params.channels, params.latent, grid, self.num_classes)
        # the training set's log-mel mean and spread: fitted preprocessing, saved with the weights
        self.register_buffer("norm", torch.tensor([0.0, 1.0]))
        # a vocoder recorded in the checkpoint's info is rebuilt here; its weights come with the state
        self.vocoder: VocoderNet | None = None
        if info.get("vocoder"):
            self._set_vocoder(VocoderNet(MelVocoderParams(**info["vocoder"]["params"])), info["vocoder"])
        self._noticed = False

    def mel_settings(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_mels": self.params.n_mels, "n_fft": self.features.n_fft,
                "hop_length": self.features.hop_length}

    def _set_vocoder(self, net: VocoderNet, record: dict) -> None:
        for p in net.parameters():
            p.requires_grad_(False)  # trained elsewhere; the VAE's optimiser never sees it
        self.vocoder = net.eval()
        self.info["vocoder"] = record

    def attach_vocoder(self, run_dir: str) -> None:
        """Load a finished mel-vocoder run (checked against this model's mel settings) and use it."""
        net, record = load_vocoder_run(run_dir, self.mel_settings())
        self._set_vocoder(net, record)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, params: MelVAEParams, source, workdir) -> "MelVAE":
        info = source.info
        if params.sample_rate is not None and params.sample_rate != info["sample_rate"]:
            raise ConfigError("generator.sample_rate", f"is {params.sample_rate} Hz but the data source gives "
                              f"{info['sample_rate']} Hz (set data.sample_rate to match)")
        model = cls(params, info)
        if params.vocoder:
            model.attach_vocoder(params.vocoder)
        waves, _ = split_tensors(source.split("train"), limit=512)
        with torch.no_grad():
            mel = model.features.log_mel(waves)
        model.norm.copy_(torch.stack([mel.mean(), mel.std().clamp_min(1e-3)]))
        return model

    @classmethod
    def load_artifact(cls, directory, params: MelVAEParams, info: dict | None = None) -> "MelVAE":
        model = super().load_artifact(directory, params, info)
        if params.vocoder and model.vocoder is None:
            model.attach_vocoder(params.vocoder)  # a vocoder trained after this model: use it from now on
        if params.sample_rate is not None and params.sample_rate != model.sample_rate:
            raise ConfigError("generator.sample_rate", f"is {params.sample_rate} Hz but the checkpoint in "
                              f"{directory} was trained at {model.sample_rate} Hz")
        return model

    # -- features -----------------------------------------------------------------------------
    def encode_input(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) waveform -> (B, 1, n_mels, padded frames) normalised log-mel."""
        mel = (self.features.log_mel(wave) - self.norm[0]) / self.norm[1]
        pad = self.padded_frames - mel.shape[-1]
        mel = F.pad(mel, (0, pad), value=float(((math.log(1e-5)) - self.norm[0]) / self.norm[1]))
        return mel.unsqueeze(1)

    def to_wave(self, x: torch.Tensor) -> torch.Tensor:
        mel = x[:, 0, :, : self.frames] * self.norm[1] + self.norm[0]
        if self.vocoder is not None:
            return self.vocoder.vocode(mel, self.num_samples)
        if not self._noticed:
            self._noticed = True
            griffin_lim_notice("mel-vae")
        return self.features.invert(mel, self.num_samples)

    # -- training -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor):
        mu, logvar = self.encoder(x, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z, y), mu, logvar

    def _losses(self, batch):
        wave, y = batch
        y = y.clamp(0, self.num_classes - 1)
        x = self.encode_input(wave)
        recon, mu, logvar = self(x, y)
        rec = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()
        return rec, kl, x.shape[0]

    def training_step(self, batch, batch_idx):
        rec, kl, n = self._losses(batch)
        warm = self.params.kl_warmup_steps
        beta = self.params.kl_weight * (min(1.0, (self.global_step + 1) / warm) if warm else 1.0)
        loss = rec + beta * kl
        self.log_dict({"loss": loss.detach(), "loss_rec": rec.detach(), "kl": kl.detach()}, prog_bar=True,
                      on_step=True, on_epoch=False, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        rec, kl, n = self._losses(batch)
        self.log("val_loss", rec + self.params.kl_weight * kl, batch_size=n)

    def configure_optimizers(self):
        return torch.optim.Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()), lr=self.params.lr)

    # -- generation ---------------------------------------------------------------------------
    def label_index(self, label) -> int:
        """A class name, or failing that an index; anything else names the option at fault."""
        text = str(label)
        if text in self.classes:
            return self.classes.index(text)
        if isinstance(label, int) or text.lstrip("-").isdigit():
            index = int(text)
            if 0 <= index < self.num_classes:
                return index
        shown = ", ".join(self.classes[:12]) + (", ..." if len(self.classes) > 12 else "")
        raise ConfigError("generate.label", f"{label!r} is not a class this model was trained on (classes: {shown})")

    def latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Sample i's noise depends on (seed, i) alone, so batching cannot change a sample."""
        out = torch.empty(n, self.params.latent)
        g = torch.Generator()
        for i in range(n):
            g.manual_seed(sample_seed(seed, start + i))
            out[i] = torch.randn(self.params.latent, generator=g)
        return out

    @torch.no_grad()
    def generate(self, n: int, seed: int = 0, label=None, temperature: float = 1.0, batch_size: int = 64,
                 start: int = 0) -> Content:
        fixed = self.label_index(label) if label is not None else None
        was_training = self.training
        self.eval()
        items: list[Item] = []
        try:
            for lo in range(0, n, batch_size):
                check_cancelled()  # a server that gave up on this request stops it here
                hi = min(n, lo + batch_size)
                idx = torch.arange(start + lo, start + hi)
                labels = torch.full_like(idx, fixed) if fixed is not None else idx % self.num_classes
                z = self.latents(hi - lo, seed, start + lo).to(self.device) * temperature
                # one clip at a time through the decoder: batched convolutions may round differently,
                # and Griffin-Lim would amplify that into different bytes on another shard layout
                y = labels.to(self.device)
                mel = torch.cat([self.decoder(z[i:i + 1], y[i:i + 1]) for i in range(len(z))]).float()
                waves = self.to_wave(mel).cpu().numpy()
                for j, wave in enumerate(waves):
                    wave = np.nan_to_num(wave.astype(np.float32))
                    peak = float(np.abs(wave).max())
                    if peak > 0.99:  # keep the promise of [-1, 1] without clipping
                        wave = wave * np.float32(0.99 / peak)
                    k = int(labels[j])
                    meta = {"index": start + lo + j, "seed": seed, "sample_seed": sample_seed(seed, start + lo + j),
                            "sample_rate": self.sample_rate, "label": k, "class": self.classes[k]}
                    items.append(Item(wave, meta))
        finally:
            self.train(was_training)
        return Content("audio", items)

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit this mel-vae (size, n_mels, n_fft or classes differ): {first}") from None

    def neural_vocoder(self) -> VocoderNet | None:
        return self.vocoder
