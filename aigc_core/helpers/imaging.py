"""Image helpers shared by the built-in components: grids, PNG encoding with provenance."""

from __future__ import annotations

import io
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np


def to_uint8_hwc(image: np.ndarray) -> np.ndarray:
    """CHW float in [0, 1] to HWC (or HW) uint8, rounding the same way everywhere."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected a CHW image, got shape {arr.shape}")
    arr = np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)
    arr = np.rint(arr * 255.0).astype(np.uint8)
    if arr.shape[0] == 1:
        return arr[0]
    return np.transpose(arr, (1, 2, 0))


def from_uint8_hwc(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = np.transpose(arr, (2, 0, 1))
    return arr.astype(np.float32) / 255.0


def make_grid(images: Sequence[np.ndarray], nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile CHW images into one CHW image, ``nrow`` per row."""
    if not images:
        raise ValueError("no images to put in a grid")
    c, h, w = np.asarray(images[0]).shape
    ncol = max(1, min(nrow, len(images)))
    nrows = math.ceil(len(images) / ncol)
    grid = np.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value, np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y:y + h, x:x + w] = np.asarray(img, np.float32)
    return grid


def png_bytes(image: np.ndarray, text: Mapping[str, Any] | None = None) -> bytes:
    """Encode a CHW float image as PNG; ``text`` goes into tEXt chunks (values JSON if not str)."""
    from PIL import Image, PngImagePlugin

    pil = Image.fromarray(to_uint8_hwc(image))
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(str(key), value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def animation_bytes(frames: Sequence[np.ndarray], fmt: str = "gif", frame_ms: int = 100,
                    comment: str = "") -> bytes:
    """CHW float frames in [0, 1] as one looping animated GIF or WebP (lossless). No time stamps:
    the same frames give the same bytes. ``comment`` (provenance) goes into the GIF's comment."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to animate")
    fmt = fmt.lower()
    if fmt not in ("gif", "webp"):
        raise ValueError(f"animation format must be gif or webp, got {fmt!r}")
    pictures = [Image.fromarray(to_uint8_hwc(f)) for f in frames]
    buf = io.BytesIO()
    if fmt == "gif":
        extra = {"comment": comment.encode("utf-8")[:255]} if comment else {}
        pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms,
                         loop=0, optimize=False, **extra)
    else:
        pictures[0].save(buf, format="WEBP", save_all=True, append_images=pictures[1:], duration=frame_ms,
                         loop=0, lossless=True, quality=100, method=4)
    return buf.getvalue()


def read_png_text(data: bytes) -> dict:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return dict(getattr(img, "text", {}))
