"""The core's modalities: image, text and audio, registered by the built-in plugin like any other.

Each format is written once, here: the exporters (``exporters.py``) and the server's responses
(``aigc_core/server/encoding.py``) both turn an item into bytes through its modality's ``encode``,
each with the provenance it carries. What only a file on disk holds (the image's post-processing
record, the whole WAV comment) is an ``encode`` keyword the exporter passes; the server's calls
leave the defaults.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aigc_core.contract.content import Content, Item
from aigc_core.contract.modalities import InvalidItem, Modality


def _need(condition: bool, reason: str) -> None:
    if not condition:
        raise InvalidItem(reason)


def wav_bytes(wave: Any, rate: int, comment: str) -> bytes:
    """A mono 16-bit PCM WAV of ``wave`` (clipped to [-1, 1], NaN as 0) with ``comment`` in its
    INFO chunk; no time stamp, so the same clip gives the same bytes."""
    import soundfile as sf

    wave = np.clip(np.nan_to_num(np.asarray(wave, np.float32)), -1.0, 1.0)
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as f:
        f.comment = comment
        f.software = "aigc"
        f.write(wave)
    return buf.getvalue()


def _float_array(item: Item, where: str) -> np.ndarray:
    data = item.data
    _need(isinstance(data, np.ndarray), f"{where}.data is {type(data).__name__}, not a numpy array "
                                        "(items hold numpy data, never tensors)")
    _need(data.dtype == np.float32, f"{where}.data has dtype {data.dtype}, expected float32")
    _need(bool(np.isfinite(data).all()), f"{where}.data has NaN or infinite values")
    return data


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def _raw_array(raw: Any, where: str) -> np.ndarray:
    """A data source's (data, label) pair with finite float data."""
    _need(isinstance(raw, (tuple, list)) and len(raw) == 2, f"{where} must be (data, label)")
    data = np.asarray(_to_numpy(raw[0]))
    _need(np.issubdtype(data.dtype, np.floating), f"{where} data has dtype {data.dtype}, expected float")
    _need(bool(np.isfinite(data).all()), f"{where} data has NaN or infinite values")
    return data


class ImageModality(Modality):
    suffix = ".png"
    media_type = "image/png"
    preview_count = 64
    display = {"render": "image"}

    def encode(self, item: Item, meta: Mapping[str, Any], chunks: Mapping[str, Any] | None = None) -> bytes:
        """A PNG with ``meta`` in its ``aigc`` text chunk and ``chunks`` (the exporter's
        ``aigc:postprocess``) in text chunks after it."""
        from aigc_core.helpers.imaging import png_bytes

        return png_bytes(item.data, {"aigc": meta, **(chunks or {})})

    def write_preview(self, content: Content, directory: Path, stem: str, exporter: Any) -> None:
        """One grid ``STEM.png`` of every image: a page of 64 digits says more than 64 files."""
        from aigc_core.contract.atomic import write_bytes
        from aigc_core.helpers.imaging import make_grid, png_bytes

        grid = make_grid([item.data for item in content.items], nrow=8)
        write_bytes(Path(directory) / f"{stem}.png", png_bytes(grid))

    def check_item(self, item: Item, where: str, info: Mapping | None = None) -> None:
        data = _float_array(item, where)
        _need(data.ndim == 3 and data.shape[0] in (1, 3, 4),
              f"{where}.data has shape {data.shape}, expected CHW with 1, 3 or 4 channels")
        lo, hi = float(data.min()), float(data.max())
        _need(lo >= 0.0 and hi <= 1.0, f"{where}.data has values in [{lo:.4g}, {hi:.4g}], expected [0, 1]")
        shape = (info or {}).get("shape")
        if shape is not None:
            _need(list(data.shape) == list(shape),
                  f"{where}.data has shape {list(data.shape)}, the data's info says {list(shape)}")

    def check_raw(self, raw: Any, where: str, info: Mapping) -> None:
        data = _raw_array(raw, where)
        _need(data.ndim == 3, f"{where} data has shape {data.shape}, expected CHW")
        _need(list(data.shape) == list(info.get("shape", data.shape)),
              f"{where} data has shape {list(data.shape)}, info['shape'] is {info.get('shape')}")
        _need(float(data.min()) >= 0.0 and float(data.max()) <= 1.0, f"{where} data is outside [0, 1]")

    def check_info(self, info: Mapping) -> None:
        shape = info.get("shape")
        _need(isinstance(shape, list) and len(shape) == 3, f"info['shape'] is {shape!r}, expected [C, H, W]")

    def sample_content(self, n: int, seed: int) -> Content:
        rng = np.random.default_rng(seed)
        data = [np.clip(rng.random((1, 8, 8)) * 0.5 + i / (2 * n), 0, 1).astype(np.float32) for i in range(n)]
        return Content("image", [Item(d, {"index": i, "seed": seed}) for i, d in enumerate(data)])

    def tiny_items(self, n: int, seed: int, info: Mapping) -> list:
        import torch

        g = torch.Generator().manual_seed(seed)
        c, h, w = info.get("shape", [1, 8, 8])
        base = torch.linspace(0, 1, h * w).reshape(1, h, w).expand(c, h, w)
        return [((base + 0.2 * torch.rand(c, h, w, generator=g)) / 1.2, i % 2) for i in range(n)]

    def tiny_info(self, info: Mapping) -> dict:
        return {"shape": list(info.get("shape", [1, 8, 8]))}


class TextModality(Modality):
    suffix = ".txt"
    media_type = "text/plain; charset=utf-8"
    display = {"render": "text"}

    def encode(self, item: Item, meta: Mapping[str, Any]) -> bytes:
        return str(item.data).encode("utf-8")

    def payload(self, item: Item, meta: Mapping[str, Any]) -> dict:
        return {"text": str(item.data)}

    def check_item(self, item: Item, where: str, info: Mapping | None = None) -> None:
        data = item.data
        _need(isinstance(data, str), f"{where}.data is {type(data).__name__}, text items must be str")

    def check_raw(self, raw: Any, where: str, info: Mapping) -> None:
        _need(isinstance(raw, str), f"{where} is {type(raw).__name__}; text sources yield str")

    def sample_content(self, n: int, seed: int) -> Content:
        rng = np.random.default_rng(seed)
        words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]
        texts = [" ".join(rng.choice(words, size=5 + i)) for i in range(n)]
        return Content("text", [Item(t, {"index": i, "seed": seed}) for i, t in enumerate(texts)])

    def tiny_items(self, n: int, seed: int, info: Mapping) -> list:
        words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
        return [" ".join(words[(i + k) % len(words)] for k in range(4 + i % 5)) + "." for i in range(n)]


class AudioModality(Modality):
    suffix = ".wav"
    media_type = "audio/wav"
    display = {"render": "audio", "spectrogram": True}

    def encode(self, item: Item, meta: Mapping[str, Any], comment_limit: int | None = 2000) -> bytes:
        """A WAV with ``meta`` as JSON in its comment. The server's responses keep the first 2,000
        characters (libsndfile drops a comment much longer than that, and a response's metadata
        travels in its JSON anyway); the exporter passes ``comment_limit=None``: its files have
        always carried the provenance whole, and keep the same bytes."""
        rate = int(item.meta.get("sample_rate") or 0)
        if rate <= 0:
            raise ValueError("audio item has no sample_rate in its metadata")
        return wav_bytes(item.data, rate, json.dumps(meta, sort_keys=True)[:comment_limit])

    def check_item(self, item: Item, where: str, info: Mapping | None = None) -> None:
        data = _float_array(item, where)
        _need(data.ndim == 1 and data.size > 0, f"{where}.data has shape {data.shape}, expected 1-D mono samples")
        peak = float(np.abs(data).max())
        _need(peak <= 1.0, f"{where}.data peaks at {peak:.4g}, expected values in [-1, 1]")
        rate = item.meta.get("sample_rate")
        _need(isinstance(rate, int) and not isinstance(rate, bool) and rate > 0,
              f"{where}.meta['sample_rate'] is {rate!r}, expected a positive int")
        expected = (info or {}).get("sample_rate")
        if expected is not None:
            _need(rate == expected, f"{where}.meta['sample_rate'] is {rate}, the data's is {expected}")

    def check_raw(self, raw: Any, where: str, info: Mapping) -> None:
        data = _raw_array(raw, where)
        _need(data.ndim == 1, f"{where} data has shape {data.shape}, expected 1-D mono samples")
        _need(float(np.abs(data).max(initial=0.0)) <= 1.0, f"{where} data is outside [-1, 1]")

    def check_info(self, info: Mapping) -> None:
        rate = info.get("sample_rate")
        _need(isinstance(rate, int) and rate > 0, f"info['sample_rate'] is {rate!r}, expected a positive int")

    def sample_content(self, n: int, seed: int) -> Content:
        rng = np.random.default_rng(seed)
        rate = 8000
        t = np.arange(rate // 4) / rate
        waves = [(0.3 * np.sin(2 * math.pi * (220 + 110 * i) * t) + 0.01 * rng.standard_normal(t.size))
                 .astype(np.float32) for i in range(n)]
        return Content("audio", [Item(w, {"index": i, "seed": seed, "sample_rate": rate}) for i, w in enumerate(waves)])

    def tiny_items(self, n: int, seed: int, info: Mapping) -> list:
        import torch

        rate = int(info.get("sample_rate", 8000))
        length = int(info.get("num_samples", rate // 4))
        t = torch.arange(length) / rate
        return [((0.5 * torch.sin(2 * math.pi * (200 + 50 * (i % 4)) * t)).float(), i % 2) for i in range(n)]

    def tiny_info(self, info: Mapping) -> dict:
        rate = int(info.get("sample_rate", 8000))
        return {"sample_rate": rate, "num_samples": int(info.get("num_samples", rate // 4))}
