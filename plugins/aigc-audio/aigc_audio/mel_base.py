"""What every spectrogram generator of this plugin shares: the mel analysis, the normalisation
fitted on the training clips, the vocoder (a named mel-vocoder run, copied into the checkpoint,
or Griffin-Lim with a one-line notice), the class names a label may give (``classes``: the core's
``Inference`` checks a label and hands over its index), and clips as Items.

Why a base class: ``mel-vae`` and ``mel-diffusion`` differ only in the model between the
normalised log-mel and back; a vocoder trained for one fits the other because both analyse
and synthesise with exactly these settings (``mel_settings``).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F

from aigc_core import ConfigError, Generator, Item, sample_seed
from aigc_core import Field, Params, PathField, field_validator

from .features import LOG_FLOOR, MelFeatures, default_n_fft
from .vocoder import VocoderNet, griffin_lim_notice, load_vocoder_run, saved_params


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


class MelParams(Params):
    """The mel analysis and vocoding settings of a spectrogram generator."""
    sample_rate: Optional[int] = Field(None, ge=1000, le=192000, description="default: the data's; set it to insist on one")
    n_mels: int = Field(64, ge=8, multiple_of=8, description="mel bands of the spectrogram")
    n_fft: Optional[int] = Field(None, ge=16, description="default: about 64 ms at the sample rate")
    hop_length: Optional[int] = Field(None, ge=1, description="default: n_fft / 4")
    griffin_lim_iters: int = Field(32, ge=1, description="Griffin-Lim iterations when turning spectrograms back into sound")
    mel_match_iters: Optional[int] = Field(None, ge=0, description="after vocoding: steps fitting each clip's own log-mel to the asked one; default: the vocoder run's setting, 0 with Griffin-Lim")
    vocoder: Optional[str] = PathField(None, exists="dir", missing="train one first, e.g. aigc run configs/vocoder-fsdd.yaml", description="a finished mel-vocoder run directory, relative to the config's folder (e.g. ../runs/vocoder-fsdd); none: Griffin-Lim")

    @field_validator("vocoder")
    @classmethod
    def _names_a_run(cls, vocoder: Optional[str]) -> Optional[str]:
        if vocoder is not None and not vocoder.strip():
            raise ValueError("must name a mel-vocoder run directory, or be left out")
        return vocoder


def check_sample_rate(asked: int | None, info: dict) -> None:
    """A generator that names a sample rate must get it from its data: resampling is the source's job."""
    if asked is not None and asked != info["sample_rate"]:
        raise ConfigError("generator.sample_rate", f"is {asked} Hz but the data source gives "
                          f"{info['sample_rate']} Hz (set data.sample_rate to match)")


class MelGenerator(Generator):
    """Subclasses set ``generator_name`` (for the Griffin-Lim notice), ``frame_multiple`` (frames are
    padded up to it), and ``normalisation(log_mel)`` (the ``norm`` buffer: offset and scale)."""
    modality = "audio"
    shards = True
    generator_name = "mel"
    frame_multiple = 8

    def __init__(self, params: MelParams, info: dict):
        super().__init__(params, info)
        self.sample_rate = int(info["sample_rate"])
        self.num_samples = int(info["num_samples"])
        self.classes = [str(c) for c in (info.get("classes") or ["all"])]
        self.num_classes = max(1, int(info.get("num_classes") or 1))
        n_fft = params.n_fft or default_n_fft(self.sample_rate)
        hop = params.hop_length or n_fft // 4
        try:
            self.features = MelFeatures(self.sample_rate, params.n_mels, n_fft, hop, params.griffin_lim_iters,
                                        params.mel_match_iters or 0)
        except ValueError as exc:
            raise ConfigError("generator." + str(exc).split(":")[0], str(exc).split(": ", 1)[1]) from None
        self.frames = self.features.frames(self.num_samples)
        multiple = self.frame_multiple_for(params)
        self.padded_frames = int(math.ceil(self.frames / multiple) * multiple)
        # the training set's log-mel offset and scale: fitted preprocessing, saved with the weights
        self.register_buffer("norm", torch.tensor([0.0, 1.0]))
        # a vocoder recorded in the checkpoint's info is rebuilt here; its weights come with the state
        self.vocoder: VocoderNet | None = None
        if info.get("vocoder"):
            self._set_vocoder(VocoderNet(saved_params(info["vocoder"]["params"], "the vocoder in this checkpoint")),
                              info["vocoder"])
        self._noticed = False

    def frame_multiple_for(self, params: MelParams) -> int:
        """What the model needs the frame count to be a multiple of (frames are padded up to it)."""
        return self.frame_multiple

    def mel_settings(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_mels": self.params.n_mels, "n_fft": self.features.n_fft,
                "hop_length": self.features.hop_length}

    def _set_vocoder(self, net: VocoderNet, record: dict) -> None:
        for p in net.parameters():
            p.requires_grad_(False)  # trained elsewhere; the generator's optimiser never sees it
        self.vocoder = net.eval()
        self.info["vocoder"] = record

    def attach_vocoder(self, run_dir: str) -> None:
        """Load a finished mel-vocoder run (checked against this model's mel settings) and use it."""
        net, record = load_vocoder_run(run_dir, self.mel_settings())
        self._set_vocoder(net, record)

    def neural_vocoder(self) -> VocoderNet | None:
        return self.vocoder

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def check(cls, params: MelParams, context) -> None:
        """The named vocoder run must be a finished mel-vocoder made with this model's mel settings:
        found by ``aigc check``, not after the data is read. The sample rate is the generator's, else
        the data source's, when either names one."""
        if not params.vocoder:
            return
        rate = params.sample_rate or getattr(context.data, "sample_rate", None)
        n_fft = params.n_fft or (default_n_fft(rate) if rate else None)
        hop = params.hop_length or (n_fft // 4 if n_fft else None)
        expected = {"sample_rate": rate, "n_mels": params.n_mels, "n_fft": n_fft, "hop_length": hop}
        load_vocoder_run(params.vocoder, expected, key=f"{context.key}.vocoder")

    def normalisation(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[offset, scale]`` fitted to training log-mels: the model sees ``(mel - offset) / scale``."""
        raise NotImplementedError

    @classmethod
    def build(cls, params: MelParams, source, workdir) -> "MelGenerator":
        info = source.info
        check_sample_rate(params.sample_rate, info)
        model = cls(params, info)
        if params.vocoder:
            model.attach_vocoder(params.vocoder)
        waves, _ = split_tensors(source.split("train"), limit=512)
        with torch.no_grad():
            mel = model.features.log_mel(waves)
        model.norm.copy_(model.normalisation(mel))
        return model

    @classmethod
    def load_artifact(cls, directory, params: MelParams, info: dict | None = None) -> "MelGenerator":
        model = super().load_artifact(directory, params, info)
        if params.vocoder and model.vocoder is None:
            model.attach_vocoder(params.vocoder)  # a vocoder trained after this model: use it from now on
        if params.sample_rate is not None and params.sample_rate != model.sample_rate:
            raise ConfigError("generator.sample_rate", f"is {params.sample_rate} Hz but the checkpoint in "
                              f"{directory} was trained at {model.sample_rate} Hz")
        return model

    # -- features -----------------------------------------------------------------------------
    def encode_input(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) waveform -> (B, 1, n_mels, padded frames) normalised log-mel, padded with silence."""
        mel = (self.features.log_mel(wave) - self.norm[0]) / self.norm[1]
        pad = self.padded_frames - mel.shape[-1]
        mel = F.pad(mel, (0, pad), value=float((math.log(LOG_FLOOR) - self.norm[0]) / self.norm[1]))
        return mel.unsqueeze(1)

    def to_wave(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, n_mels, padded frames) normalised log-mel -> (B, samples), cropped back to the clip."""
        return self.vocode(x[:, 0, :, : self.frames] * self.norm[1] + self.norm[0], self.num_samples)

    def vocode(self, log_mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """(B, n_mels, frames) natural-log mel power -> (B, num_samples): the trained vocoder, or
        Griffin-Lim with a one-line notice. Public so a metric can re-synthesise real clips the
        way this generator's clips are made, and tell the vocoder's share of a gap from the model's."""
        if self.vocoder is not None:
            return self.vocoder.vocode(log_mel, num_samples, self.params.mel_match_iters)
        if not self._noticed:
            self._noticed = True
            griffin_lim_notice(self.generator_name)
        return self.features.invert(log_mel, num_samples)

    # -- generation ---------------------------------------------------------------------------
    def clip_item(self, wave: np.ndarray, index: int, seed: int, label: int, **meta) -> Item:
        """One generated clip, kept inside [-1, 1] without clipping, with the meta every clip has."""
        wave = np.nan_to_num(np.asarray(wave, dtype=np.float32))
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak > 0.99:
            wave = wave * np.float32(0.99 / peak)
        return Item(wave, {"index": index, "seed": seed, "sample_seed": sample_seed(seed, index),
                           "sample_rate": self.sample_rate, "label": label, "class": self.classes[label],
                           **self.vocoder_meta(), **meta})

    def vocoder_meta(self) -> dict:
        """Which vocoder made the sound, so a listener can tell a trained vocoder from Griffin-Lim."""
        if self.vocoder is None:
            return {"vocoder": "griffin-lim", "griffin_lim_iters": self.params.griffin_lim_iters}
        return {"vocoder": "mel-vocoder", "vocoder_run": str(self.info["vocoder"].get("run", ""))}
