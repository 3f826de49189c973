"""Exporters for the three modalities. Names depend only on item indices, so the same seed
writes the same bytes to the same paths."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aigc_core.atomic import write_bytes, write_text
from aigc_core.base import Exporter
from aigc_core.content import Content, Item

#: Item metadata that is processing history rather than provenance; written elsewhere or not at all.
NOT_PROVENANCE = ("postprocess", "dropped")


def provenance(item: Item) -> dict:
    """Every scalar (or list of scalars) in an item's metadata: generators add their own keys
    (``mode``, ``label``, ``prompt``...) and they reach the file without the core knowing them."""
    def plain(value) -> bool:
        if isinstance(value, (str, int, float, bool)) or value is None:
            return True
        return isinstance(value, (list, tuple)) and len(value) <= 64 and all(plain(v) for v in value)

    return {k: v for k, v in sorted(item.meta.items()) if k not in NOT_PROVENANCE and plain(v)}


def _stem(item: Item, position: int, grids: list[int]) -> str:
    if item.meta.get("kind") == "grid":
        grids.append(position)
        return "grid" if len(grids) == 1 else f"grid_{len(grids)}"
    index = item.meta.get("index", position)
    return f"sample_{int(index):05d}"


class PNGExporter(Exporter):
    def export(self, content: Content, directory: Path) -> list[Path]:
        from aigc_core.imaging import png_bytes

        grids: list[int] = []
        written = []
        for position, item in enumerate(content.items):
            path = Path(directory) / f"{_stem(item, position, grids)}.png"
            meta = {"aigc": provenance(item)}
            if "postprocess" in item.meta:
                meta["aigc:postprocess"] = item.meta["postprocess"]
            written.append(write_bytes(path, png_bytes(item.data, meta)))
        return written


class TextExporter(Exporter):
    def export(self, content: Content, directory: Path) -> list[Path]:
        grids: list[int] = []
        written, lines = [], []
        for position, item in enumerate(content.items):
            stem = _stem(item, position, grids)
            written.append(write_text(Path(directory) / f"{stem}.txt", str(item.data)))
            lines.append(json.dumps({"file": f"{stem}.txt", "text": str(item.data), **_jsonable(item.meta)},
                                    sort_keys=True))
        written.append(write_text(Path(directory) / "samples.jsonl", "\n".join(lines) + ("\n" if lines else "")))
        return written


@dataclass
class WAVParams:
    spectrograms: bool = True  # a spectrogram PNG beside each WAV
    contact_sheet: bool = True  # one spectrograms.png of every clip in the run


class WAVExporter(Exporter):
    """16-bit PCM WAVs with provenance in the comment, plus spectrograms to look at without listening."""

    Params = WAVParams

    def export(self, content: Content, directory: Path) -> list[Path]:
        import soundfile as sf

        from aigc_core.imaging import make_grid, png_bytes

        grids: list[int] = []
        written = []
        pictures = []
        for position, item in enumerate(content.items):
            rate = int(item.meta.get("sample_rate", 0))
            if rate <= 0:
                raise ValueError(f"audio item {position} has no sample_rate in its metadata")
            wave = np.clip(np.nan_to_num(np.asarray(item.data, np.float32)), -1.0, 1.0)
            buf = io.BytesIO()
            with sf.SoundFile(buf, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as f:
                f.comment = json.dumps(provenance(item), sort_keys=True)
                f.software = "aigc"
                f.write(wave)
            stem = _stem(item, position, grids)
            path = Path(directory) / f"{stem}.wav"
            written.append(write_bytes(path, buf.getvalue()))
            if self.params.spectrograms or self.params.contact_sheet:
                picture = spectrogram_image(wave, rate)
                pictures.append(picture)
                if self.params.spectrograms:
                    meta = {"aigc": provenance(item), "aigc:sample_rate": rate}
                    written.append(write_bytes(Path(directory) / f"{stem}.png", png_bytes(picture, meta)))
        if self.params.contact_sheet and pictures:
            height = max(p.shape[1] for p in pictures)
            width = max(p.shape[2] for p in pictures)
            padded = [np.pad(p, ((0, 0), (0, height - p.shape[1]), (0, width - p.shape[2])), constant_values=1.0)
                      for p in pictures]
            sheet = make_grid(padded, nrow=4 if width > height else 8, padding=4)
            written.append(write_bytes(Path(directory) / "spectrograms.png", png_bytes(sheet, {"aigc:clips": len(pictures)})))
        return written


def spectrogram_image(wave: np.ndarray, rate: int, dynamic_range_db: float = 80.0) -> np.ndarray:
    """A log-power spectrogram as a CHW RGB image in [0, 1], low frequencies at the bottom.

    numpy only, so exporting needs no torch; about 32 ms Hann frames, 75 % overlap, colours by
    matplotlib's perceptually uniform "magma" map, levels relative to the clip's loudest bin.
    """
    n_fft = 2 ** int(round(np.log2(0.032 * rate)))
    hop = n_fft // 4
    x = np.asarray(wave, np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * np.hanning(n_fft), axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power, 1e-12))
    top = max(float(db.max()), -120.0 + dynamic_range_db)  # silence stays dark
    level = np.clip((db - top + dynamic_range_db) / dynamic_range_db, 0.0, 1.0).T[::-1]
    from matplotlib import colormaps

    rgb = colormaps["magma"](level)[..., :3]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
