"""Generated items as bytes and JSON, each through its modality's encoder (``Modality.encode``).

Metadata travels with each item (in the JSON, and inside the file where its format allows: PNG
text chunks, the WAV comment), so a downloaded file still says which run, seed and index made it.
Nothing here knows a format: the built-in plugin's modalities write PNG, WAV and text, the same
encoders the exporters use, and a plugin's modality brings its own.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Any

import numpy as np

from ..contract.content import Content, Item
from ..contract.modalities import get_modality


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
    return get_modality(modality).encode(item, meta)


def file_name(modality: str, item: Item, position: int) -> str:
    index = item.meta.get("index", position)
    try:
        stem = f"sample_{int(index):05d}"
    except (TypeError, ValueError):
        stem = f"sample_{position:05d}"
    if item.meta.get("kind") == "grid":
        stem = f"grid_{position:05d}"
    return stem + get_modality(modality).suffix


def to_json(content: Content) -> list[dict]:
    modality = get_modality(content.modality)
    out = []
    for position, item in enumerate(content.items):
        meta = jsonable(item.meta)
        entry: dict[str, Any] = {"media_type": modality.media_type, "meta": meta,
                                 "filename": file_name(content.modality, item, position),
                                 "derived": is_derived(item)}
        entry.update(modality.payload(item, meta))
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
        media_type = get_modality(content.modality).media_type
        return item_bytes(content.modality, item, jsonable(item.meta)), media_type, names[position]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        metas = []
        for name, item in zip(names, content.items):
            meta = jsonable(item.meta)
            zf.writestr(name, item_bytes(content.modality, item, meta))
            metas.append({"file": name, "meta": meta})
        zf.writestr("meta.json", json.dumps({**summary, "items": metas}, indent=2, sort_keys=True))
    return buf.getvalue(), "application/zip", "samples.zip"
