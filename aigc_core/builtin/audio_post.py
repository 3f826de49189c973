"""Audio post-processors: mono float32 waveforms in [-1, 1] with ``meta["sample_rate"]``.

Each records what it did in ``meta["postprocess"]`` so a listener can tell a quiet generator
from a quiet setting. Loudness, resampling and denoising use torchaudio, imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from aigc_core.base import PostProcessor
from aigc_core.content import Content, Item

SILENCE_LUFS = -70.0  # BS.1770's absolute gate: below it there is nothing to normalise


def _rate(item: Item, position: int) -> int:
    rate = int(item.meta.get("sample_rate") or 0)
    if rate <= 0:
        raise ValueError(f"audio item {item.meta.get('index', position)} has no sample_rate in its metadata")
    return rate


def _map(content: Content, fn: Callable[[np.ndarray, int, dict], tuple[np.ndarray, dict]], step: str) -> Content:
    """Apply ``fn(wave, rate, meta) -> (wave, record)`` to every clip; the record lands in the metadata."""
    items = []
    for position, item in enumerate(content.items):
        rate = _rate(item, position)
        meta = dict(item.meta)
        wave, record = fn(np.asarray(item.data, np.float32), rate, meta)
        meta.setdefault("postprocess", []).append({"name": step, **record})
        items.append(Item(np.clip(np.asarray(wave, np.float32), -1.0, 1.0), meta))
    return content.replace(items)


def _db(x: float) -> float:
    return float(20.0 * np.log10(max(x, 1e-12)))


# ---------------------------------------------------------------------------------------------


@dataclass
class LoudnessParams:
    target_lufs: float = -23.0  # EBU R128's programme level
    max_peak: float = 0.99  # after the gain, a peak above this is scaled down (no clipping)

    def validate(self) -> None:
        if self.target_lufs > 0:
            raise ValueError(f"target_lufs: must be 0 LUFS or below (full scale is 0), got {self.target_lufs}")
        if self.target_lufs < -70:
            raise ValueError("target_lufs: must be above -70 LUFS (the silence gate)")
        if not 0 < self.max_peak <= 1:
            raise ValueError("max_peak: must be in (0, 1]")


def measure_lufs(wave: np.ndarray, rate: int) -> float:
    """Integrated loudness (BS.1770); clips shorter than one 400 ms block are measured looped."""
    import torch
    import torchaudio.functional as AF

    block = int(0.4 * rate) + 1
    if len(wave) < block:
        wave = np.tile(wave, int(np.ceil(block / max(len(wave), 1))))
    value = float(AF.loudness(torch.from_numpy(np.ascontiguousarray(wave))[None], rate))
    return value if np.isfinite(value) else float("-inf")


class Loudness(PostProcessor):
    Params = LoudnessParams

    def __call__(self, content: Content) -> Content:
        p = self.params

        def fn(wave, rate, meta):
            if not len(wave) or not np.isfinite(wave).all():
                return wave, {"skipped": "empty or non-finite"}
            lufs = measure_lufs(wave, rate)
            if lufs < SILENCE_LUFS:
                return wave, {"skipped": "near-silent", "lufs": None if not np.isfinite(lufs) else round(lufs, 2)}
            gain = 10 ** ((p.target_lufs - lufs) / 20)
            out = wave * gain
            peak = float(np.abs(out).max())
            limited = peak > p.max_peak
            if limited:
                out = out * (p.max_peak / peak)
            return out, {"lufs_before": round(lufs, 2), "gain_db": round(_db(gain), 2), "peak_limited": limited}

        return _map(content, fn, "loudness")


@dataclass
class PeakNormaliseParams:
    peak_db: float = -1.0  # dBFS

    def validate(self) -> None:
        if self.peak_db > 0:
            raise ValueError("peak_db: must be 0 dBFS or below")
        if self.peak_db < -60:
            raise ValueError("peak_db: must be above -60 dBFS")


class PeakNormalise(PostProcessor):
    Params = PeakNormaliseParams

    def __call__(self, content: Content) -> Content:
        target = 10 ** (self.params.peak_db / 20)

        def fn(wave, rate, meta):
            peak = float(np.abs(wave).max()) if len(wave) else 0.0
            if peak < 1e-6 or not np.isfinite(peak):
                return wave, {"skipped": "silent or non-finite"}
            return wave * (target / peak), {"gain_db": round(_db(target / peak), 2)}

        return _map(content, fn, "peak-normalise")


@dataclass
class TrimSilenceParams:
    threshold_db: float = -40.0  # relative to the clip's loudest frame
    frame_ms: float = 10.0  # analysis frame length in milliseconds
    keep_ms: float = 20.0  # silence left at each end, so onsets are not clipped

    def validate(self) -> None:
        if self.threshold_db >= 0:
            raise ValueError("threshold_db: must be below 0 (relative to the loudest frame)")
        if self.frame_ms <= 0:
            raise ValueError("frame_ms: must be positive")
        if self.keep_ms < 0:
            raise ValueError("keep_ms: must be 0 or more")


def frame_rms_db(wave: np.ndarray, frame: int) -> np.ndarray:
    n = max(1, int(np.ceil(len(wave) / frame)))
    padded = np.zeros(n * frame, np.float64)
    padded[: len(wave)] = wave
    rms = np.sqrt((padded.reshape(n, frame) ** 2).mean(1))
    return 20 * np.log10(np.maximum(rms, 1e-12))


class TrimSilence(PostProcessor):
    Params = TrimSilenceParams

    def __call__(self, content: Content) -> Content:
        p = self.params

        def fn(wave, rate, meta):
            frame = max(1, int(rate * p.frame_ms / 1000))
            if len(wave) < frame:
                return wave, {"kept": [0, len(wave)]}
            db = frame_rms_db(wave, frame)
            loud = np.flatnonzero(db >= db.max() + p.threshold_db)
            keep = int(rate * p.keep_ms / 1000)
            start = max(0, loud[0] * frame - keep)
            end = min(len(wave), (loud[-1] + 1) * frame + keep)
            return wave[start:end], {"kept": [int(start), int(end)]}

        return _map(content, fn, "trim-silence")


@dataclass
class FadeParams:
    fade_in_ms: float = 5.0  # fade-in length in milliseconds
    fade_out_ms: float = 20.0  # fade-out length in milliseconds
    shape: Literal["linear", "cosine"] = "cosine"  # fade curve

    def validate(self) -> None:
        if self.fade_in_ms < 0 or self.fade_out_ms < 0:
            raise ValueError("fade_in_ms: fades must be 0 ms or longer")


class Fade(PostProcessor):
    """Short fades remove the clicks a cut or a vocoder leaves at the ends."""

    Params = FadeParams

    def __call__(self, content: Content) -> Content:
        p = self.params

        def ramp(n: int) -> np.ndarray:
            t = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float64)
            return t if p.shape == "linear" else 0.5 - 0.5 * np.cos(np.pi * t)

        def fn(wave, rate, meta):
            out = wave.astype(np.float64)
            n_in = min(len(out), int(rate * p.fade_in_ms / 1000))
            n_out = min(len(out), int(rate * p.fade_out_ms / 1000))
            if n_in:
                out[:n_in] *= ramp(n_in)
            if n_out:
                out[len(out) - n_out:] *= ramp(n_out)[::-1]
            return out, {"in_ms": p.fade_in_ms, "out_ms": p.fade_out_ms}

        return _map(content, fn, "fade")


@dataclass
class ResampleParams:
    sample_rate: int = 16000  # target sample rate (Hz)

    def validate(self) -> None:
        if not 1000 <= self.sample_rate <= 192000:
            raise ValueError("sample_rate: must be between 1000 and 192000 Hz")


class Resample(PostProcessor):
    Params = ResampleParams

    def __call__(self, content: Content) -> Content:
        import torch
        import torchaudio.functional as AF

        target = self.params.sample_rate

        def fn(wave, rate, meta):
            if rate == target or not len(wave):
                meta["sample_rate"] = target
                return wave, {"from": rate, "to": target}
            out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, target).numpy()
            meta["sample_rate"] = target
            return out, {"from": rate, "to": target}

        return _map(content, fn, "resample")


@dataclass
class SpectralGateParams:
    threshold_db: float = 12.0  # bins less than this far above their noise floor are attenuated (the
    # floor is a low percentile; Rayleigh-distributed noise stays within ~13 dB of its 20th percentile)
    reduction_db: float = 20.0  # how far gated bins are turned down
    noise_percentile: float = 20.0  # a bin's noise floor: this percentile of its level over time
    n_fft: int | None = None  # default: about 32 ms

    def validate(self) -> None:
        if self.threshold_db < 0:
            raise ValueError("threshold_db: must be 0 or more")
        if self.reduction_db <= 0:
            raise ValueError("reduction_db: must be positive")
        if not 0 < self.noise_percentile < 100:
            raise ValueError("noise_percentile: must be in (0, 100)")
        if self.n_fft is not None and self.n_fft < 16:
            raise ValueError("n_fft: must be at least 16")


class SpectralGate(PostProcessor):
    """Estimates each frequency's noise floor from the clip's quieter frames and gates below it.

    Stationary hiss (and the Griffin-Lim phase noise of vocoded clips) sits near the floor in
    every frame; speech and notes rise well above it, so a soft mask keeps them.
    """

    Params = SpectralGateParams

    def __call__(self, content: Content) -> Content:
        import torch

        p = self.params

        def fn(wave, rate, meta):
            n_fft = p.n_fft or 2 ** int(round(np.log2(0.032 * rate)))
            if len(wave) < n_fft:
                return wave, {"skipped": "shorter than one frame"}
            hop = n_fft // 4
            window = torch.hann_window(n_fft, dtype=torch.float64)
            x = torch.from_numpy(wave.astype(np.float64))
            spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
            level = 20 * torch.log10(spec.abs().clamp_min(1e-10))
            floor = torch.quantile(level, p.noise_percentile / 100, dim=1, keepdim=True)
            above = level - floor - p.threshold_db
            # soft mask: 1 well above the gate, -reduction_db well below it
            floor_gain = 10 ** (-p.reduction_db / 20)
            gain = floor_gain + (1 - floor_gain) * torch.sigmoid(above / 2.0)
            # keep a strong bin's neighbours (window leakage), then smooth over time against musical noise
            gain = torch.nn.functional.max_pool1d(gain.T[None], 3, 1, 1)[0].T
            gain = torch.nn.functional.avg_pool1d(gain[None], 3, 1, 1, count_include_pad=False)[0]
            out = torch.istft(spec * gain, n_fft, hop, window=window, length=len(wave))
            return out.numpy(), {"threshold_db": p.threshold_db, "reduction_db": p.reduction_db}

        return _map(content, fn, "denoise")


@dataclass
class AudioQualityParams:
    silence_dbfs: float = -50.0  # RMS below this is silent
    max_clipped_fraction: float = 0.01  # more samples than this at full scale is clipped
    clip_level: float = 0.999  # samples at or above this absolute level count as clipped

    def validate(self) -> None:
        if self.silence_dbfs >= 0:
            raise ValueError("silence_dbfs: must be below 0 dBFS")
        if not 0 <= self.max_clipped_fraction < 1:
            raise ValueError("max_clipped_fraction: must be in [0, 1)")
        if not 0 < self.clip_level <= 1:
            raise ValueError("clip_level: must be in (0, 1]")


class AudioQuality(PostProcessor):
    """Quality gate: drops non-finite, empty, silent or clipped clips, saying which and by how much."""

    Params = AudioQualityParams

    def reason(self, wave: np.ndarray) -> str | None:
        p = self.params
        if not len(wave):
            return "empty clip"
        bad = int((~np.isfinite(wave)).sum())
        if bad:
            return f"non-finite: {bad} NaN or infinite samples"
        rms = _db(float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))))
        if rms < p.silence_dbfs:
            return f"silent: RMS {rms:.1f} dBFS < {p.silence_dbfs} dBFS"
        clipped = float((np.abs(wave) >= p.clip_level).mean())
        if clipped > p.max_clipped_fraction:
            return f"clipped: {clipped:.1%} of samples at full scale > {p.max_clipped_fraction:.1%}"
        return None

    def __call__(self, content: Content) -> Content:
        kept, dropped = [], []
        for item in content.items:
            why = self.reason(np.asarray(item.data))
            if why is None:
                kept.append(item)
            else:
                dropped.append(content.drop(item, "audio-quality", why))
        return content.replace(kept, dropped)
