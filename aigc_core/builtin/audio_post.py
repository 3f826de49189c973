"""Audio post-processors: mono float32 waveforms in [-1, 1] with ``meta["sample_rate"]``.

Each records what it did in ``meta["postprocess"]`` so a listener can tell a quiet generator
from a quiet setting. Loudness, resampling and denoising use torchaudio, imported on first use.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

from aigc_core.contract.base import PostProcessor
from aigc_core.contract.params import Field, Params
from aigc_core.contract.content import Content, Item

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


class LoudnessParams(Params):
    target_lufs: float = Field(-23.0, ge=-70, le=0, description=(
        "EBU R128's programme level is -23 (full scale is 0 LUFS, -70 the silence gate)"))
    max_peak: float = Field(0.99, gt=0, le=1, description="after the gain, a peak above this is scaled down (no clipping)")


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


class PeakNormaliseParams(Params):
    peak_db: float = Field(-1.0, ge=-60, le=0, description="dBFS")


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


class TrimSilenceParams(Params):
    threshold_db: float = Field(-40.0, lt=0, description="relative to the clip's loudest frame")
    frame_ms: float = Field(10.0, gt=0, description="analysis frame length in milliseconds")
    keep_ms: float = Field(20.0, ge=0, description="silence left at each end, so onsets are not clipped")


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


class FadeParams(Params):
    fade_in_ms: float = Field(5.0, ge=0, description="fade-in length in milliseconds")
    fade_out_ms: float = Field(20.0, ge=0, description="fade-out length in milliseconds")
    shape: Literal["linear", "cosine"] = Field("cosine", description="fade curve")


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


class ResampleParams(Params):
    sample_rate: int = Field(16000, ge=1000, le=192000, description="target sample rate (Hz)")


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


class SpectralGateParams(Params):
    threshold_db: float = Field(12.0, ge=0, description=(
        "bins less than this far above their noise floor are attenuated (the floor is a low percentile; "
        "Rayleigh-distributed noise stays within ~13 dB of its 20th percentile)"))
    reduction_db: float = Field(20.0, gt=0, description="how far gated bins are turned down")
    noise_percentile: float = Field(20.0, gt=0, lt=100, description="a bin's noise floor: this percentile of its level over time")
    n_fft: int | None = Field(None, ge=16, description="default: about 32 ms")


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


class AudioQualityParams(Params):
    silence_dbfs: float = Field(-50.0, lt=0, description="RMS below this is silent")
    max_clipped_fraction: float = Field(0.01, ge=0, lt=1, description="more samples than this at full scale is clipped")
    clip_level: float = Field(0.999, gt=0, le=1, description="samples at or above this absolute level count as clipped")


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
