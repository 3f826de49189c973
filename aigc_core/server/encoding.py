"""Generated items as bytes and JSON: PNG for images, 16-bit WAV for audio, strings for text.

Metadata travels with each item (in the JSON, and inside PNG text chunks and the WAV comment),
so a downloaded file still says which run, seed and index made it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import zipfile
from typing import Any

import numpy as np

from ..content import Content, Item

MEDIA_TYPES = {"image": "image/png", "audio": "audio/wav", "text": "text/plain; charset=utf-8"}
SUFFIXES = {"image": ".png", "audio": ".wav", "text": ".txt"}


def jsonable(value: Any) -> Any:
    """Metadata as plain JSON: numpy scalars to numbers, arrays to lists, NaN to null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist()) if value.size <= 64 else f"<array {list(value.shape)}>"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def item_bytes(modality: str, item: Item, meta: dict) -> bytes:
    if modality == "image":
        from ..imaging import png_bytes

        return png_bytes(item.data, {"aigc": meta})
    if modality == "audio":
        import soundfile as sf

        rate = int(item.meta.get("sample_rate") or 0)
        if rate <= 0:
            raise ValueError("audio item has no sample_rate in its metadata")
        wave = np.clip(np.nan_to_num(np.asarray(item.data, np.float32)), -1.0, 1.0)
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as f:
            f.comment = json.dumps(meta, sort_keys=True)[:2000]
            f.software = "aigc"
            f.write(wave)
        return buf.getvalue()
    return str(item.data).encode("utf-8")


def file_name(modality: str, item: Item, position: int) -> str:
    index = item.meta.get("index", position)
    try:
        stem = f"sample_{int(index):05d}"
    except (TypeError, ValueError):
        stem = f"sample_{position:05d}"
    if item.meta.get("kind") == "grid":
        stem = f"grid_{position:05d}"
    return stem + SUFFIXES[modality]


def to_json(content: Content) -> list[dict]:
    out = []
    for position, item in enumerate(content.items):
        meta = jsonable(item.meta)
        entry: dict[str, Any] = {"media_type": MEDIA_TYPES[content.modality], "meta": meta,
                                 "filename": file_name(content.modality, item, position)}
        if content.modality == "text":
            entry["text"] = str(item.data)
        else:
            entry["data_base64"] = base64.b64encode(item_bytes(content.modality, item, meta)).decode("ascii")
        out.append(entry)
    return out


def dropped_json(content: Content) -> list[dict]:
    return [jsonable({"index": i.meta.get("index"), **(i.meta.get("dropped") or {})}) for i in content.dropped]


def is_derived(item: Item) -> bool:
    """A view made from the samples by a post-processor (a grid), not a sample itself."""
    return item.meta.get("kind") == "grid"


def to_files(content: Content, summary: dict, requested: int | None = None) -> tuple[bytes, str, str]:
    """One sample: its own file. Several: a zip of the files plus ``meta.json``.

    A request for one sample (``requested == 1``) gets that sample's file even when a
    post-processor added a derived item (an image grid of that one image): the client asked
    for one file, and a zip of a picture and a grid of the same picture answers another question.
    """
    names = [file_name(content.modality, item, p) for p, item in enumerate(content.items)]
    samples = [p for p, item in enumerate(content.items) if not is_derived(item)]
    if len(content.items) == 1 or (requested == 1 and len(samples) == 1):
        position = samples[0] if samples else 0
        item = content.items[position]
        return item_bytes(content.modality, item, jsonable(item.meta)), MEDIA_TYPES[content.modality], names[position]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        metas = []
        for name, item in zip(names, content.items):
            meta = jsonable(item.meta)
            zf.writestr(name, item_bytes(content.modality, item, meta))
            metas.append({"file": name, "meta": meta})
        if content.modality == "image":  # frames of a walk also travel as the animation the exporter writes
            from ..builtin.exporters import animations
            from ..imaging import animation_bytes

            for name, frames in animations(content).items():
                fmt = "webp" if frames[0].meta.get("animation_format") == "webp" else "gif"
                zf.writestr(f"{name}.{fmt}", animation_bytes([f.data for f in frames], fmt,
                                                             int(frames[0].meta.get("frame_ms", 100))))
        zf.writestr("meta.json", json.dumps({**summary, "items": metas}, indent=2, sort_keys=True))
    return buf.getvalue(), "application/zip", "samples.zip"
