"""A small neural vocoder (log-mel -> waveform) as a generator of its own: the network and its
sampling, in plain torch (how it is trained, the HiFi-GAN way, is ``vocoder_training.py``).

Why its own generator: a vocoder learns from audio alone (no labels, no spectrogram model), so
it trains once per data setting (rate and mel analysis) and any spectrogram generator reuses it
by naming the finished run (``generator.vocoder: runs/vocoder-fsdd``, see ``load_vocoder_run``,
which loads the plain ``VocoderNet`` without Lightning).

The network works at the frame rate and lets an inverse STFT make the samples (as Vocos and
iSTFTNet do), because a CPU budget of minutes does not buy the hundreds of thousands of steps
that a HiFi-GAN upsampling stack needs: one measured on FSDD was still at 2x Griffin-Lim's
STFT distance after 650 steps (docs/audio.md). Per frame it predicts a log-magnitude correction
to the least-squares inverse of the mel filter bank (zero at initialisation, so training starts
from Griffin-Lim's magnitudes, not from noise) and a phase: with ``phase: advance`` a per-bin
advance added to each bin's nominal advance and accumulated over frames, with ``phase: direct``
the phase itself (Vocos). The body is ConvNeXt-style blocks (depthwise 7-tap convolution,
layer norm, a two-layer MLP, scaled residual).

What a few CPU minutes buy (docs/benchmarks.md): learning phase end to end through the inverse
STFT stays near Griffin-Lim's distance, while learning the magnitude alone from the true STFT
(``stft_weight: 0``, ``magnitude_weight``) and letting ``griffin_lim_iters`` of Griffin-Lim find
a phase for it lands clearly below: Griffin-Lim's phase is good on a consistent magnitude, and
what makes its clips phasey is the smeared magnitude that inverting the mel filter bank gives.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from torch import nn

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, RunDir, UsageError, check_cancelled
from aigc_core import Field, ParamError, Params, model_validator

from .features import LOG_FLOOR, MelFeatures, default_n_fft, match_log_mel

SIZES = {"debug": (32, 2, 4), "small": (128, 4, 8), "base": (256, 6, 16)}  # width, blocks, discriminator width
#: settings a spectrogram generator and its vocoder must share, with the config key that sets each
MEL_KEYS = ("sample_rate", "n_mels", "n_fft", "hop_length")


class MelVocoderParams(Params):
    size: Literal["debug", "small", "base"] = Field("small", description="preset widths; debug is for fast tests")
    width: Optional[int] = Field(None, ge=8, multiple_of=8, description="channels of the frame-rate body; default from size: 32 / 128 / 256")
    sample_rate: Optional[int] = Field(None, ge=1000, le=192000, description="default: the data's; set it to insist on one")
    n_mels: int = Field(64, ge=8, description="mel bands; must match the spectrogram generator that will use this vocoder")
    n_fft: Optional[int] = Field(None, ge=16, description="default: about 64 ms at the sample rate (as mel-vae)")
    hop_length: Optional[int] = Field(None, ge=2, description="default: n_fft / 4 (as mel-vae)")
    segment_frames: int = Field(32, ge=2, description="mel frames per training crop (32 x 128 samples = 0.5 s at 8 kHz)")
    discriminator: Literal["mpd+msd", "mpd", "msd", "none"] = Field("mpd+msd", description="multi-period and/or multi-scale")
    gan_start_steps: int = Field(400, ge=0, description="steps on the STFT loss alone before the discriminators join")
    stft_weight: float = Field(10.0, ge=0, description="weight of the multi-resolution STFT distance")
    adversarial_weight: float = Field(1.0, ge=0, description="weight of the least-squares adversarial loss")
    feature_match_weight: float = Field(2.0, ge=0, description="weight of the discriminator feature-matching loss")
    lr: float = Field(1e-3, gt=0, description="learning rate of generator and discriminators (AdamW, betas 0.8 / 0.99)")
    lr_schedule: Literal["constant", "cosine"] = Field("constant", description="cosine: decays to zero over the planned steps")
    phase: Literal["advance", "direct"] = Field("advance", description="advance: per-bin advance summed over frames; direct: per frame")
    magnitude_weight: float = Field(0.0, ge=0, description="weight of an L1 log-magnitude loss on the predicted spectrum itself")
    griffin_lim_iters: int = Field(0, ge=0, description="at generation: Griffin-Lim iterations refining the net's phase (0: none)")
    mel_match_iters: int = Field(0, ge=0, description="at generation, after those: steps fitting each clip's own log-mel to the asked one (0: none)")

    @model_validator(mode="after")
    def _some_loss(self) -> "MelVocoderParams":
        if not (self.stft_weight or self.magnitude_weight):
            raise ParamError("stft_weight", "this or magnitude_weight must be above 0")
        return self


class MelVocoderOptions(Params):
    split: Literal["test", "val", "train"] = Field("test", description="the real clips to re-synthesise from their own mels")


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 3 * channels), nn.GELU(), nn.Linear(3 * channels, channels))
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp(self.norm(self.depthwise(x).transpose(1, 2))) * self.scale
        return x + h.transpose(1, 2)


class VocoderNet(nn.Module):
    """The part a spectrogram generator carries: mel settings, input normalisation and weights."""

    def __init__(self, params: MelVocoderParams):
        super().__init__()
        import torchaudio.functional as AF

        self.sample_rate = int(params.sample_rate)
        self.n_mels = params.n_mels
        self.n_fft = int(params.n_fft)
        self.hop_length = int(params.hop_length)
        width, blocks, _ = SIZES[params.size]
        width = params.width or width
        bins = self.n_fft // 2 + 1
        self.inp = nn.Conv1d(params.n_mels, width, 7, padding=3)
        self.inp_norm = nn.LayerNorm(width)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(width) for _ in range(blocks)])
        self.out_norm = nn.LayerNorm(width)
        self.phase_mode = params.phase
        self.griffin_lim_iters = params.griffin_lim_iters
        self.mel_match_iters = params.mel_match_iters
        self.head = nn.Linear(width, 2 * bins)
        nn.init.zeros_(self.head.weight)  # start exactly at the least-squares magnitude and nominal phase
        nn.init.zeros_(self.head.bias)
        # the training set's log-mel mean and spread: fitted preprocessing, saved with the weights
        self.register_buffer("norm", torch.tensor([0.0, 1.0]))
        # derived from the settings, not learnt: rebuilt on load, kept out of the checkpoint
        fb = AF.melscale_fbanks(bins, 0.0, self.sample_rate / 2.0, params.n_mels, self.sample_rate)
        self.register_buffer("fb", fb, persistent=False)  # (bins, n_mels)
        self.register_buffer("inverse_fb", torch.linalg.pinv(fb.T), persistent=False)  # (bins, n_mels)
        self.register_buffer("advance", 2 * torch.pi * torch.arange(bins) * self.hop_length / self.n_fft,
                             persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def mel_settings(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_fft": self.n_fft,
                "hop_length": self.hop_length}

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames): the same analysis as ``MelFeatures.log_mel``,
        from the net's own buffers, so ``mel_match_iters`` needs no state beyond the weights."""
        spec = torch.stft(wave, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, return_complex=True)
        return torch.log((spec.abs().pow(2).transpose(-1, -2) @ self.fb).transpose(-1, -2) + LOG_FLOOR)

    def spectrum(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) natural-log mel power -> (B, bins, frames) complex STFT."""
        power = (self.inverse_fb @ (torch.exp(log_mel) - 1e-5)).clamp_min(1e-10)
        x = self.inp((log_mel - self.norm[0]) / self.norm[1])
        x = self.blocks(self.inp_norm(x.transpose(1, 2)).transpose(1, 2))
        d_mag, d_phase = self.head(self.out_norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        magnitude = power.sqrt() * torch.exp(d_mag.clamp(max=6.0))
        if self.phase_mode == "direct":
            phase = d_phase
        else:
            phase = torch.cumsum(self.advance[None, :, None] + d_phase, dim=-1)
        return torch.polar(magnitude, phase)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, length=length)

    def forward(self, log_mel: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """(B, n_mels, frames) natural-log mel power -> (B, length) waveform, frame t centred on
        sample t * hop (as the analysis with ``center=True``); length defaults to (frames - 1) * hop."""
        return self._istft(self.spectrum(log_mel), length or (log_mel.shape[-1] - 1) * self.hop_length)

    def refine(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Griffin-Lim (torchaudio's momentum, 0.99) started from the net's own phase and kept to
        its magnitude: a few iterations make the spectrum consistent, which a net trained for
        minutes does not quite manage, and starting from its phase rather than from zero keeps
        the harmonics' phase relations it learnt."""
        magnitude = spec.abs()
        angles = spec / magnitude.clamp_min(1e-10)
        previous = torch.zeros_like(spec)
        for _ in range(self.griffin_lim_iters):
            rebuilt = torch.stft(self._istft(magnitude * angles, length), self.n_fft, self.hop_length, self.n_fft,
                                 self.window, center=True, return_complex=True)
            angles = rebuilt - (0.99 / 1.99) * previous
            angles = angles / angles.abs().clamp_min(1e-16)
            previous = rebuilt
        return self._istft(magnitude * angles, length)

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, num_samples: int, mel_match_iters: int | None = None) -> torch.Tensor:
        """One clip at a time: batched kernels may round differently, and a clip must have the
        same bytes however a run is batched or sharded. ``mel_match_iters`` None: this net's own."""
        was_training = self.training
        self.eval()
        try:
            waves = []
            for i in range(len(log_mel)):
                check_cancelled()  # per clip: a server that gave up on this request stops it here
                waves.append(self.refine(self.spectrum(log_mel[i:i + 1]), num_samples))
        finally:
            self.train(was_training)
        out = torch.cat(waves) if waves else log_mel.new_zeros(0, num_samples)
        iters = self.mel_match_iters if mel_match_iters is None else mel_match_iters
        return match_log_mel(out, log_mel, self.log_mel, iters).clamp(-1.0, 1.0)


class MelVocoder(Generator):
    """The vocoder network (``net``, what a spectrogram generator carries) and the mel analysis
    that feeds it; ``generate`` re-synthesises real clips. The discriminators are training's."""
    modality = "audio"
    Params = MelVocoderParams
    GenerateOptions = MelVocoderOptions
    shards = True
    reads_data = True
    training = "aigc_audio.vocoder_training:MelVocoderTraining"

    def __init__(self, params: MelVocoderParams, info: dict):
        rate = int(params.sample_rate or info["sample_rate"])
        n_fft = params.n_fft or default_n_fft(rate)
        resolved = MelVocoderParams(**{**params.model_dump(), "sample_rate": rate, "n_fft": n_fft,
                                       "hop_length": params.hop_length or n_fft // 4})
        super().__init__(resolved, info)
        self.sample_rate = rate
        self.num_samples = int(info["num_samples"])
        self.classes = [str(c) for c in (info.get("classes") or ["all"])]
        try:
            self.features = MelFeatures(rate, resolved.n_mels, n_fft, resolved.hop_length)
        except ValueError as exc:
            raise ConfigError("generator." + str(exc).split(":")[0], str(exc).split(": ", 1)[1]) from None
        self.net = VocoderNet(resolved)
        #: the data source previews re-synthesise while training (set by the training module)
        self.preview_data = None
        # what a spectrogram generator needs to rebuild the net from model.json alone
        self.info["vocoder_params"] = resolved.model_dump()

    @classmethod
    def build(cls, params: MelVocoderParams, source, workdir) -> "MelVocoder":
        from .mel_base import check_sample_rate, split_tensors

        info = source.info
        check_sample_rate(params.sample_rate, info)
        model = cls(params, info)
        waves, _ = split_tensors(source.split("train"), limit=512)
        with torch.no_grad():
            mel = model.features.log_mel(waves)
        model.net.norm.copy_(torch.stack([mel.mean(), mel.std().clamp_min(1e-3)]))
        return model

    # -- generation ---------------------------------------------------------------------------
    def vocode(self, log_mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        return self.net.vocode(log_mel, num_samples)

    def neural_vocoder(self) -> VocoderNet:
        return self.net

    def generate(self, n: int, seed: int, options: MelVocoderOptions, data_source=None, start: int = 0) -> Content:
        """Re-synthesis of real clips from their own mel spectrograms: what a vocoder alone can make."""
        from .mel_base import split_tensors

        split = options.split

        if data_source is None:  # a preview during training: the data being trained on
            data_source = self.preview_data
        if data_source is None:
            raise UsageError("mel-vocoder re-synthesises real clips: pass data_source (the pipeline does this)")
        source = data_source() if callable(data_source) else data_source
        waves, labels = split_tensors(source.split(split))
        if len(waves) == 0:
            raise UsageError(f"generate.split: the {split!r} split is empty")
        idx = torch.arange(start, start + n) % len(waves)
        items = []
        if n:
            out = self.vocode(self.features.log_mel(waves[idx]), self.num_samples).cpu().numpy()
            for j, wave in enumerate(out):
                k = int(labels[idx[j]])
                meta = {"index": start + j, "seed": seed, "sample_rate": self.sample_rate, "mode": "resynthesis",
                        "split": split, "source_index": int(idx[j]), "label": k, "vocoder": "mel-vocoder",
                        "class": self.classes[k] if k < len(self.classes) else str(k)}
                items.append(Item(np.nan_to_num(wave.astype(np.float32)), meta))
        return Content("audio", items)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_state(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")}, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit this mel-vocoder (size or mel settings differ): {first}") from None


def saved_params(saved: dict, where: str = "mel-vocoder") -> MelVocoderParams:
    """Settings from a model.json: runs saved before ``phase`` existed used the accumulated-advance head.
    Settings this version no longer knows mean weights trained for another network: a one-line
    CheckpointError naming them, not a validation traceback."""
    gone = sorted(set(saved) - set(MelVocoderParams.model_fields))
    if gone:
        raise CheckpointError(f"{where}: trained by another version of aigc-audio (settings {', '.join(gone)} "
                              f"no longer exist); train the vocoder again")
    try:
        return MelVocoderParams(**{"phase": "advance", "griffin_lim_iters": 0, "mel_match_iters": 0, **saved})
    except ValueError as exc:
        raise CheckpointError(f"{where}: saved vocoder settings do not validate: {str(exc).splitlines()[0]}") from None


def load_vocoder_run(run_dir: str | Path, expected: dict, key: str = "generator.vocoder") -> tuple[VocoderNet, dict]:
    """The finished mel-vocoder of ``run_dir`` (its model/, every file checked against the
    manifest's sha256), refused with a one-line error naming ``key`` when it was trained for
    another sample rate or mel analysis than ``expected``. Returns the net and a provenance record."""
    from safetensors.torch import load_file

    run = RunDir(run_dir)
    manifest_path = run.manifest_path
    if not manifest_path.is_file():
        raise ConfigError(key, f"{run_dir}: not a run directory (no {manifest_path.name}); train one first, "
                          f"e.g. aigc run configs/vocoder-fsdd.yaml")
    manifest = run.manifest()
    if not manifest:
        raise ConfigError(key, f"{manifest_path}: unreadable (not a JSON object)")
    name = run.recorded_generator()  # the manifest's generator (older runs: its copy of the config)
    if name != "mel-vocoder":
        raise ConfigError(key, f"{run_dir} holds a {name!r} run, not a mel-vocoder")
    if not (manifest.get("checkpoint") or {}).get("files"):
        raise ConfigError(key, f"{run_dir}: training has not finished (no model/ in its manifest)")
    model_dir = run.model_dir
    try:
        files = run.verified_model_files()
    except CheckpointError as exc:
        raise CheckpointError(f"{key}: {exc}") from None
    if "model.safetensors" not in files:
        raise ConfigError(key, f"{run_dir}: training has not finished (no model/ in its manifest)")
    try:
        saved = json.loads((model_dir / "model.json").read_text())["info"]["vocoder_params"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{key}: {model_dir / 'model.json'}: no vocoder settings ({exc})") from None
    for setting in MEL_KEYS:
        if expected.get(setting) is not None and int(saved[setting]) != int(expected[setting]):
            unit = " Hz" if setting == "sample_rate" else ""
            raise ConfigError(key, f"{run_dir} was trained with {setting} {saved[setting]}{unit} but this generator "
                              f"uses {expected[setting]}{unit}; train a vocoder with the same {setting}")
    net = VocoderNet(saved_params(saved, f"{key}: {run_dir}"))
    state = load_file(str(model_dir / "model.safetensors"))
    try:
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{key}: {model_dir}: weights do not fit their settings: {str(exc).splitlines()[0]}") from None
    record = {"run": str(run_dir), "checkpoint_sha256": files["model.safetensors"], "params": saved}
    return net.eval(), record


def griffin_lim_notice(generator: str) -> None:
    """One line on stderr: the user should know why the clips sound phasey, and how to do better."""
    print(f"aigc: note: {generator} has no vocoder (generator.vocoder is not set); vocoding with Griffin-Lim. "
          f"Train a mel-vocoder on the same data (configs/vocoder-*.yaml) and name its run directory there", file=sys.stderr)
