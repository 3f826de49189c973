"""Exporters for the three modalities. Names depend only on item indices, so the same seed
writes the same bytes to the same paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from aigc_core.atomic import write_bytes, write_text
from aigc_core.base import Exporter
from aigc_core.content import Content, Item

PROVENANCE_KEYS = ("generator", "run", "seed", "index", "checkpoint_sha256", "label", "prompt")


def provenance(item: Item) -> dict:
    return {k: item.meta[k] for k in PROVENANCE_KEYS if k in item.meta}


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


class WAVExporter(Exporter):
    def export(self, content: Content, directory: Path) -> list[Path]:
        import soundfile as sf

        grids: list[int] = []
        written = []
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
            path = Path(directory) / f"{_stem(item, position, grids)}.wav"
            written.append(write_bytes(path, buf.getvalue()))
        return written


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
