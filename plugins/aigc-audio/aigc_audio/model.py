"""A class-conditional VAE of log-mel spectrograms: its networks and its sampling, in plain torch.

Waveform -> log-mel (torchaudio) -> normalised by the training set's mean and spread -> encoder
(three stride-2 convolutions) -> q(z | x, class) -> decoder (mirror image) -> log-mel. Sampling
draws z from the prior per sample seed, decodes with the asked class and vocodes with
a trained neural vocoder (``generator.vocoder``: a finished mel-vocoder run, copied into this
model's checkpoint so a run stays self-contained) or, without one, InverseMelScale + Griffin-Lim.
A finished run loads here without Lightning; the losses and optimiser are ``MelVAETraining``
(``vae_training.py``). docs/audio.md argues why a VAE rather than a GAN.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from aigc_core import CheckpointError, Content, check_cancelled, sample_normal
from aigc_core import Field, Params, preset

from .mel_base import MelGenerator, MelParams, split_tensors  # noqa: F401 (split_tensors: imported from here too)

SIZES = {"debug": (4, 8), "small": (16, 16), "base": (32, 32)}  # width, latent


class MelVAEParams(MelParams):
    size: Literal["debug", "small", "base"] = Field("small", description="preset sizes; debug is for fast tests")
    latent_dim: Optional[int] = Field(None, ge=1, description="default from size: 8 / 16 / 32")
    width: Optional[int] = Field(None, ge=1, description="channels of the first convolution; default from size: 4 / 16 / 32")
    kl_weight: float = Field(4.0, ge=0, description="at 1 the latent carried the class and prior samples lost it (docs/benchmarks.md)")
    kl_warmup_steps: int = Field(300, ge=0, description="the KL weight ramps up from 0, so early steps learn to reconstruct")
    prior: Literal["standard", "class"] = Field("standard", description=(
        "sample z from N(0, I), or from a Gaussian per class fitted to the training clips' codes after training"))
    lr: float = Field(1e-3, gt=0, description="learning rate (Adam)")

    channels = preset("width", SIZES, 0)
    latent = preset("latent_dim", SIZES, 1)


class MelVAEOptions(Params):
    label: Optional[str] = Field(None, description="a class name or index; default: cycle through the classes")
    temperature: float = Field(1.0, ge=0, le=2, description="scale of the prior's noise; below 1 trades variety for typicality")
    batch_size: int = Field(64, ge=1, description="clips generated per call of the decoder loop")


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


class MelVAE(MelGenerator):
    generator_name = "mel-vae"
    frame_multiple = 8  # three stride-2 convolutions
    Params = MelVAEParams
    GenerateOptions = MelVAEOptions
    training = "aigc_audio.vae_training:MelVAETraining"

    def __init__(self, params: MelVAEParams, info: dict):
        super().__init__(params, info)
        grid = (params.n_mels // 8, self.padded_frames // 8)
        self.encoder = Encoder(params.channels, params.latent, grid, self.num_classes)
        self.decoder = Decoder(params.channels, params.latent, grid, self.num_classes)
        # the prior samples are drawn from: mean and Cholesky factor per class (N(0, I) until fitted)
        self.register_buffer("prior_mean", torch.zeros(self.num_classes, params.latent))
        self.register_buffer("prior_scale", torch.eye(params.latent).repeat(self.num_classes, 1, 1))

    def normalisation(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The training set's log-mel mean and spread."""
        return torch.stack([log_mel.mean(), log_mel.std().clamp_min(1e-3)])

    # -- the network ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor):
        """Encode, draw z from the posterior, decode: the reconstruction training scores."""
        mu, logvar = self.encoder(x, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z, y), mu, logvar

    # -- the prior, fitted once training ends --------------------------------------------------
    @torch.no_grad()
    def fit_class_prior(self, waves: torch.Tensor, labels: torch.Tensor) -> None:
        """Why: with a KL weight low enough for sharp spectrograms, the codes of real clips do not
        fill N(0, I) and prior samples land where the decoder never learnt (the blur, the wrong
        digits). A Gaussian per class fitted to the training clips' codes (mixture mean and
        covariance of their posteriors) puts samples where the decoder was trained instead.
        Plain torch, like the normalisation ``build`` fits: training calls it when it ends
        (``MelVAETraining.on_fit_end``), and a finished run's prior can be refitted without Lightning."""
        was_training = self.training
        self.eval()
        mus, variances = [], []
        for lo in range(0, len(waves), 64):
            y = labels[lo:lo + 64].clamp(0, self.num_classes - 1).to(self.device)
            mu, logvar = self.encoder(self.encode_input(waves[lo:lo + 64].to(self.device)), y)
            mus.append(mu.double().cpu())
            variances.append(logvar.double().exp().cpu())
        self.train(was_training)
        mu, var = torch.cat(mus), torch.cat(variances)
        labels = labels.clamp(0, self.num_classes - 1)
        eye = torch.eye(mu.shape[1], dtype=torch.float64)
        for k in range(self.num_classes):
            rows = labels == k
            if int(rows.sum()) < 2:
                continue  # too few clips of this class to fit: keep N(0, I)
            m = mu[rows].mean(0)
            centred = mu[rows] - m
            cov = centred.T @ centred / (len(centred) - 1) + torch.diag(var[rows].mean(0)) + 1e-4 * eye
            self.prior_mean[k] = m.float().to(self.prior_mean.device)
            self.prior_scale[k] = torch.linalg.cholesky(cov).float().to(self.prior_scale.device)

    # -- generation ---------------------------------------------------------------------------
    def latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Sample i's noise depends on (seed, i) alone, so batching cannot change a sample."""
        return sample_normal(n, self.params.latent, seed, start)

    def generate(self, n: int, seed: int, options: MelVAEOptions, start: int = 0) -> Content:
        fixed, batch_size = options.label, options.batch_size  # the label: a class index (Inference)
        items = []
        for lo in range(0, n, batch_size):
            check_cancelled()  # a server that gave up on this request stops it here
            hi = min(n, lo + batch_size)
            idx = torch.arange(start + lo, start + hi)
            labels = torch.full_like(idx, fixed) if fixed is not None else idx % self.num_classes
            y = labels.to(self.device)
            eps = self.latents(hi - lo, seed, start + lo).to(self.device) * options.temperature
            z = self.prior_mean[y] + (self.prior_scale[y] @ eps.unsqueeze(-1)).squeeze(-1)
            # one clip at a time through the decoder: batched convolutions may round differently,
            # and Griffin-Lim would amplify that into different bytes on another shard layout
            mel = torch.cat([self.decoder(z[i:i + 1], y[i:i + 1]) for i in range(len(z))]).float()
            waves = self.to_wave(mel).cpu().numpy()
            items += [self.clip_item(wave, start + lo + j, seed, int(labels[j])) for j, wave in enumerate(waves)]
        return Content("audio", items)

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        # a checkpoint from before the fitted prior samples N(0, I), as it did then
        state.setdefault("prior_mean", torch.zeros_like(self.prior_mean))
        state.setdefault("prior_scale", torch.eye(self.params.latent).repeat(self.num_classes, 1, 1))
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit this mel-vae (size, n_mels, n_fft or classes differ): {first}") from None
