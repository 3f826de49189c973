"""Audio data sources: every clip becomes a mono float32 waveform of one fixed length and rate.

A fixed length lets generators batch clips without padding logic of their own, and one rate
means a model never has to guess what a sample index means in seconds.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from aigc_core.builtin.files import FileSelection, check_selection, select_files
from aigc_core.contract.components import DataParams, InMemorySource, LabelledTensors
from aigc_core.contract.errors import DataError, first_line
from aigc_core.contract.params import Field, ParamError, model_validator
from aigc_core.contract.preflight import PathField
from aigc_core.contract.splits import require_training_items

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class WaveDataset(LabelledTensors):
    """Waveforms (N, samples) and labels held in memory."""

    @property
    def waves(self) -> torch.Tensor:
        return self.data


SampleRate = Annotated[int, Field(ge=1000, le=192000, description="clips are resampled to this rate (Hz)")]
Duration = Annotated[float, Field(ge=0.05, le=60, description="seconds; clips are cut or zero-padded to this length")]


class AudioParams(DataParams):
    sample_rate: SampleRate = 16000
    duration: Duration = 1.0

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.duration))


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut the tail or zero-pad it: the onset, where most of a clip's identity is, stays put."""
    if len(wave) >= n:
        return wave[:n]
    return np.concatenate([wave, np.zeros(n - len(wave), wave.dtype)])


class AudioSource(InMemorySource):
    """Load once, split deterministically, describe the clips to generators."""

    modality = "audio"
    Params = AudioParams
    dataset_class = WaveDataset

    def load(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Float waveforms (N, num_samples) in [-1, 1], int64 labels, class names."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        require_training_items(self, {name: len(part) for name, part in self._splits.items()})

    @property
    def info(self) -> dict:
        self.setup()
        return {
            "modality": "audio",
            "sample_rate": self.params.sample_rate,
            "num_samples": self.params.num_samples,
            "num_classes": len(self.classes),
            "classes": list(self.classes),
            "sizes": {k: len(v) for k, v in self._splits.items()},
        }


# ---------------------------------------------------------------------------------------------
# Files


class AudioFolderParams(AudioParams, FileSelection):
    path: str = PathField(min_length=1, exists="dir", description="a folder of WAV/FLAC/OGG files; ~ and $VARS are expanded")
    labels: Literal["folders", "pattern", "none"] = Field("folders", description="class labels from subfolders, from a file-name pattern, or none")
    label_pattern: str = Field(r"^(?P<label>[^_]+)_", description="matched against the file name; FSDD: <digit>_<speaker>_<n>.wav")
    on_corrupt: Literal["skip", "fail"] = Field("skip", description="an unreadable or empty file: skip it with a warning, or stop")
    peak_normalise: bool = Field(False, description="scale each clip to peak 1 before cutting (recording levels vary)")

    @model_validator(mode="after")
    def _pattern_has_a_group(self) -> "AudioFolderParams":
        if self.labels == "pattern":
            try:
                compiled = re.compile(self.label_pattern)
            except re.error as exc:
                raise ParamError("label_pattern", f"not a regular expression ({exc})") from None
            if "label" not in compiled.groupindex and compiled.groups < 1:
                raise ParamError("label_pattern", "needs a group, named 'label' or the first one")
        return self


def expand_path(raw: str, key: str = "data.path") -> Path:
    expanded = os.path.expandvars(os.path.expanduser(raw))
    missing = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if missing:
        raise DataError(f"{key}: environment variable {missing[0]} is not set (in {raw!r}); "
                        f"set it or give the folder directly")
    return Path(expanded)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """A file as a mono float32 waveform and its rate; raises on anything unreadable or empty."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError("no audio frames (zero-length file)")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wave).all():
        raise ValueError("non-finite samples")
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate)


class AudioFolder(AudioSource):
    """WAV/FLAC/OGG files under a folder, labelled by subfolder or by a file-name pattern."""

    Params = AudioFolderParams

    @classmethod
    def check(cls, params: AudioFolderParams, context) -> None:
        check_selection([params.path], AUDIO_SUFFIXES, params, context.key)

    def _label(self, root: Path, path: Path, pattern: re.Pattern | None) -> str | None:
        mode = self.params.labels
        if mode == "none":
            return "all"
        if mode == "folders":
            return path.parent.relative_to(root).as_posix() if path.parent != root else "."
        match = pattern.search(path.name)
        if not match:
            return None
        return match.group("label") if "label" in pattern.groupindex else match.group(1)

    def load(self):
        import soundfile as sf

        p = self.params
        root = expand_path(p.path)
        if not root.is_dir():
            raise DataError(f"{root}: audio folder does not exist (data.path)")
        files = sorted(q for q in root.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES and q.is_file())
        files = select_files(files, root, p)
        if not files:
            raise DataError(f"{root}: no audio files found (looked for {', '.join(AUDIO_SUFFIXES)})")
        pattern = re.compile(p.label_pattern) if p.labels == "pattern" else None
        n = p.num_samples
        by_rate: dict[int, list[int]] = {}
        waves: list[np.ndarray] = []
        names: list[str] = []
        for path in files:
            label = self._label(root, path, pattern)
            if label is None:
                print(f"aigc: warning: skipping {path}: its name does not match data.label_pattern", file=sys.stderr)
                continue
            try:
                wave, rate = read_mono(path)
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
                reason = first_line(exc)
                if p.on_corrupt == "fail":
                    raise DataError(f"{path}: unreadable audio ({reason}); set data.on_corrupt=skip to skip it") from None
                print(f"aigc: warning: skipping unreadable audio {path} ({reason})", file=sys.stderr)
                continue
            if p.peak_normalise:
                peak = float(np.abs(wave).max())
                if peak > 1e-6:
                    wave = wave / peak
            by_rate.setdefault(rate, []).append(len(waves))
            waves.append(wave)
            names.append(label)
        if not waves:
            raise DataError(f"{root}: every audio file was unreadable or unlabelled")
        out = torch.zeros(len(waves), n)
        for rate, indices in by_rate.items():
            for i in indices:
                wave = torch.from_numpy(waves[i])
                if rate != p.sample_rate:
                    import torchaudio.functional as AF

                    # cut before resampling: long files would otherwise cost time for nothing
                    keep = int(np.ceil(n * rate / p.sample_rate)) + 64
                    wave = AF.resample(wave[:keep], rate, p.sample_rate)
                out[i] = torch.from_numpy(fit_length(wave.numpy().astype(np.float32), n))
        out.clamp_(-1.0, 1.0)
        classes = sorted(set(names), key=_natural)
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[c] for c in names], dtype=torch.int64)
        return out, labels, classes


def _natural(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


# ---------------------------------------------------------------------------------------------
# Procedural notes

TIMBRES = ("sine", "square", "saw", "bell", "pluck")


class SynthNotesParams(AudioParams):
    sample_rate: SampleRate = 8000
    duration: Duration = 0.5
    num_items: int = Field(600, ge=2, description="how many notes to synthesise")
    timbres: list[Literal[TIMBRES]] | None = Field(None, min_length=1, description="default: all of " + ", ".join(TIMBRES))
    min_pitch: int = Field(48, ge=0, le=120, description="lowest MIDI note number drawn")
    max_pitch: int = Field(72, ge=0, le=120, description="highest MIDI note number drawn")
    noise: float = Field(0.003, ge=0, lt=0.5, description="white-noise level, so silence is not digital zero")

    @model_validator(mode="after")
    def _pitches_fit(self) -> "SynthNotesParams":
        if self.min_pitch > self.max_pitch:
            raise ParamError("min_pitch", f"must be at most max_pitch ({self.max_pitch})")
        if self.max_pitch >= 69 + 12 * np.log2(self.sample_rate / 2 / 440.0):  # the Nyquist frequency's MIDI note
            raise ParamError("max_pitch", f"note {self.max_pitch} is above the Nyquist frequency of {self.sample_rate} Hz")
        return self


def synth_note(timbre: str, freq: float, n: int, rate: int, rng: np.random.Generator,
               attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """One note: a band-limited oscillator shaped by an ADSR envelope (bell and pluck decay freely)."""
    t = np.arange(n) / rate
    nyquist = rate / 2
    phase = rng.uniform(0, 2 * np.pi)
    if timbre == "sine":
        wave = np.sin(2 * np.pi * freq * t + phase)
    elif timbre in ("square", "saw"):
        wave = np.zeros(n)
        k = 1
        while k * freq < nyquist:
            if timbre == "saw" or k % 2 == 1:
                wave += np.sin(2 * np.pi * k * freq * t + k * phase) / k
            k += 1
        wave *= 0.6
    elif timbre == "bell":
        wave = np.zeros(n)
        for ratio, amp, tau in ((1.0, 1.0, 0.6), (2.76, 0.5, 0.3), (5.40, 0.3, 0.15), (8.93, 0.2, 0.08)):
            if ratio * freq < nyquist:
                wave += amp * np.exp(-t / tau) * np.sin(2 * np.pi * ratio * freq * t + phase * ratio)
        return wave * _adsr(n, rate, 0.002, 0.0, 1.0, release)
    else:  # pluck: a noisy harmonic series whose upper partials die first
        wave = np.zeros(n)
        k = 1
        while k * freq < nyquist and k <= 24:
            wave += rng.uniform(0.5, 1.0) / k * np.exp(-t * (3.0 + 2.5 * k)) * np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 6.3))
            k += 1
        return wave * _adsr(n, rate, 0.001, 0.0, 1.0, release)
    return wave * _adsr(n, rate, attack, decay, sustain, release)


def _adsr(n: int, rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    env = np.full(n, sustain)
    a = max(1, int(attack * rate))
    d = int(decay * rate)
    r = max(1, int(release * rate))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)[: n]
    if d:
        env[a:a + d] = np.linspace(1.0, sustain, d)[: max(0, n - a)]
    env[max(0, n - r):] *= np.linspace(1.0, 0.0, min(r, n))
    return env


class SynthNotes(AudioSource):
    """Labelled instrument-like notes made from the seed alone: the offline audio quickstart.

    Classes are timbres; pitch, envelope, level and phase vary within a class, so a model must
    learn the timbre rather than memorise one waveform.
    """

    Params = SynthNotesParams

    def load(self):
        p = self.params
        timbres = list(dict.fromkeys(p.timbres or TIMBRES))
        rng = np.random.default_rng([int(self.seed), 0x5EED])
        n = p.num_samples
        waves = np.zeros((p.num_items, n), np.float32)
        labels = np.zeros(p.num_items, np.int64)
        for i in range(p.num_items):
            label = i % len(timbres)
            pitch = rng.integers(p.min_pitch, p.max_pitch + 1)
            freq = 440.0 * 2 ** ((pitch - 69) / 12)
            attack, decay = rng.uniform(0.005, 0.05), rng.uniform(0.02, 0.15)
            sustain, release = rng.uniform(0.4, 0.9), rng.uniform(0.05, 0.2)
            wave = synth_note(timbres[label], freq, n, p.sample_rate, rng, attack, decay, sustain, release)
            wave = wave / max(np.abs(wave).max(), 1e-9) * rng.uniform(0.3, 0.9)
            wave = wave + p.noise * rng.standard_normal(n)
            waves[i] = np.clip(wave, -1.0, 1.0)
            labels[i] = label
        return torch.from_numpy(waves), torch.from_numpy(labels), timbres
