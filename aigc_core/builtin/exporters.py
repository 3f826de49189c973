"""Exporters for the core's modalities, and ``FileExporter`` for any modality's own encoder.

Names depend only on item indices, so the same seed writes the same bytes to the same paths. Every
item's file is its modality's ``encode`` (``modalities.py``), the encoder the server's responses
use too; what the exporters add is around the items: names, animations, spectrograms, samples.jsonl.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from aigc_core.contract.atomic import write_bytes, write_text
from aigc_core.contract.base import Exporter
from aigc_core.contract.content import Content, Item
from aigc_core.contract.modalities import get_modality
from aigc_core.contract.params import Field, Params
from aigc_core.contract.progress import report_progress

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


#: a name an animation may be written under (it comes from item metadata, so it is checked)
_ANIMATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def animations(content: Content) -> dict[str, list[Item]]:
    """Items that say they are frames of one animation (``meta["animation"]``: its name,
    ``meta["frame"]``: their place), grouped by name in frame order."""
    groups: dict[str, list[Item]] = {}
    for item in content.items:
        name = item.meta.get("animation")
        if isinstance(name, str) and _ANIMATION_NAME.match(name) and item.meta.get("kind") != "grid":
            groups.setdefault(name, []).append(item)
    return {name: sorted(items, key=lambda i: int(i.meta.get("frame", 0))) for name, items in groups.items()}


class FileExporter(Exporter):
    """One file per item, written by its modality's encoder (``Modality.encode``, named with its
    ``suffix``) with the item's provenance inside: a new modality's exporter in one registration,
    writing the same bytes the server sends."""

    def export(self, content: Content, directory: Path) -> list[Path]:
        modality = get_modality(content.modality)
        grids: list[int] = []
        written = []
        for position, item in enumerate(content.items):
            path = Path(directory) / f"{_stem(item, position, grids)}{modality.suffix}"
            written.append(write_bytes(path, modality.encode(item, provenance(item))))
        return written


class PNGExporter(Exporter):
    """One PNG per item (provenance in its text chunks); frames of an animation (a walk in a latent
    space, say) also become ``<animation>.gif`` or ``.webp`` (``meta["animation_format"]``)."""

    def export(self, content: Content, directory: Path) -> list[Path]:
        from aigc_core.helpers.imaging import animation_bytes

        image = get_modality(content.modality)
        grids: list[int] = []
        written = []
        for position, item in enumerate(content.items):
            path = Path(directory) / f"{_stem(item, position, grids)}{image.suffix}"
            chunks = {"aigc:postprocess": item.meta["postprocess"]} if "postprocess" in item.meta else None
            written.append(write_bytes(path, image.encode(item, provenance(item), chunks)))
            report_progress(position + 1, len(content.items))
        for name, frames in animations(content).items():
            fmt = "webp" if frames[0].meta.get("animation_format") == "webp" else "gif"
            shapes = {np.asarray(f.data).shape for f in frames}
            if len(shapes) != 1:
                raise ValueError(f"animation {name!r}: its frames differ in shape ({sorted(shapes)})")
            comment = json.dumps({k: v for k, v in provenance(frames[0]).items() if k not in ("frame", "index")},
                                 sort_keys=True)
            data = animation_bytes([f.data for f in frames], fmt, int(frames[0].meta.get("frame_ms", 100)), comment)
            written.append(write_bytes(Path(directory) / f"{name}.{fmt}", data))
        return written


class TextExporter(Exporter):
    def export(self, content: Content, directory: Path) -> list[Path]:
        text = get_modality(content.modality)
        grids: list[int] = []
        written, lines = [], []
        for position, item in enumerate(content.items):
            name = _stem(item, position, grids) + text.suffix
            written.append(write_bytes(Path(directory) / name, text.encode(item, provenance(item))))
            lines.append(json.dumps({"file": name, "text": str(item.data), **_jsonable(item.meta)},
                                    sort_keys=True))
        written.append(write_text(Path(directory) / "samples.jsonl", "\n".join(lines) + ("\n" if lines else "")))
        return written


class WAVParams(Params):
    spectrograms: bool = Field(True, description="a readable spectrogram PNG (axes in s and Hz, dB colour bar) beside each WAV")
    contact_sheet: bool = Field(True, description="spectrograms.png of every clip, plus spectrograms_<label>.png per label")
    sheet_columns: int = Field(5, ge=1, description="spectrograms per row on a contact sheet")
    sheet_max_clips: int = Field(40, ge=1, description="at most this many clips on one contact sheet")


class WAVExporter(Exporter):
    """16-bit PCM WAVs with provenance in the comment, plus spectrograms to look at without listening."""

    Params = WAVParams

    def export(self, content: Content, directory: Path) -> list[Path]:
        from aigc_core.builtin.spectrograms import contact_sheet, sheet_name, spectrogram_image
        from aigc_core.helpers.imaging import png_bytes

        audio = get_modality(content.modality)
        grids: list[int] = []
        written = []
        clips: list[tuple[str, str, np.ndarray, int]] = []  # (label, title, wave, rate)
        for position, item in enumerate(content.items):
            rate = int(item.meta.get("sample_rate", 0))
            if rate <= 0:
                raise ValueError(f"audio item {position} has no sample_rate in its metadata")
            wave = np.clip(np.nan_to_num(np.asarray(item.data, np.float32)), -1.0, 1.0)
            stem = _stem(item, position, grids)
            path = Path(directory) / f"{stem}{audio.suffix}"
            written.append(write_bytes(path, audio.encode(Item(wave, item.meta), provenance(item), comment_limit=None)))
            label = item.meta.get("class", item.meta.get("label"))
            label = None if label is None else str(label)
            title = stem + (f", label {label}" if label is not None else "")
            clips.append((label, title, wave, rate))
            if self.params.spectrograms:
                meta = {"aigc": provenance(item), "aigc:sample_rate": rate}
                # the title is shared by the clips of a label, so the drawn frame is reused (fast)
                heading = (f"label {label}: " if label is not None else "") + f"{len(wave) / rate:.2f} s at {rate} Hz"
                picture = spectrogram_image(wave, rate, heading)
                written.append(write_bytes(Path(directory) / f"{stem}.png", png_bytes(picture, meta)))
            report_progress(position + 1, len(content.items))
        if self.params.contact_sheet and clips:
            rate = clips[0][3]
            same_rate = [c for c in clips if c[3] == rate]
            limit, cols = self.params.sheet_max_clips, self.params.sheet_columns
            labels = sorted({c[0] for c in same_rate if c[0] is not None}, key=_natural_key)
            # the overview: with labels, a few clips of each label in label order; else the first clips
            if labels:
                per = max(1, min(cols, limit // len(labels)))
                overview = [c for lab in labels for c in [c for c in same_rate if c[0] == lab][:per]]
            else:
                overview = same_rate[:limit]
            sheet = contact_sheet([c[2] for c in overview], rate, [c[1] for c in overview],
                                  f"{len(overview)} of {len(clips)} clips", columns=cols)
            written.append(write_bytes(Path(directory) / "spectrograms.png", png_bytes(sheet, {"aigc:clips": len(overview)})))
            for lab in labels if len(labels) > 1 else []:
                group = [c for c in same_rate if c[0] == lab][:limit]
                count = f"{len(group)} clip" + ("s" if len(group) != 1 else "")
                sheet = contact_sheet([c[2] for c in group], rate, [c[1] for c in group], f"label {lab}: {count}",
                                      columns=cols)
                written.append(write_bytes(Path(directory) / sheet_name(lab),
                                           png_bytes(sheet, {"aigc:clips": len(group), "aigc:label": lab})))
        return written


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _jsonable(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
