"""Image post-processors. They work on numpy CHW floats in [0, 1] and need no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from aigc_core.base import PostProcessor
from aigc_core.content import Content, Item
from aigc_core.imaging import from_uint8_hwc, make_grid, to_uint8_hwc


def _singles(content: Content):
    """Grid items are derived views; filters apply to the singles only."""
    return [i for i in content.items if i.meta.get("kind") != "grid"]


def _map(content: Content, fn, step: str, **record) -> Content:
    items = []
    for item in content.items:
        if item.meta.get("kind") == "grid":
            items.append(item)
            continue
        meta = dict(item.meta)
        meta.setdefault("postprocess", []).append({"name": step, **record})
        items.append(Item(np.clip(fn(np.asarray(item.data, np.float32)), 0.0, 1.0).astype(np.float32), meta))
    return content.replace(items)


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(to_uint8_hwc(image))


def _unpil(img) -> np.ndarray:
    return from_uint8_hwc(np.asarray(img))


@dataclass
class DenoiseParams:
    method: Literal["median", "gaussian"] = "median"  # median filter or Gaussian blur
    size: int = 3  # median window (odd)
    sigma: float = 0.8  # gaussian radius in pixels

    def validate(self) -> None:
        if self.size < 1 or self.size % 2 == 0:
            raise ValueError("size: must be an odd number of at least 1")
        if self.sigma <= 0:
            raise ValueError("sigma: must be positive")


class Denoise(PostProcessor):
    Params = DenoiseParams

    def __call__(self, content: Content) -> Content:
        from PIL import ImageFilter

        p = self.params
        flt = ImageFilter.MedianFilter(p.size) if p.method == "median" else ImageFilter.GaussianBlur(p.sigma)
        return _map(content, lambda a: _unpil(_pil(a).filter(flt)), "denoise", method=p.method)


@dataclass
class SharpenParams:
    radius: float = 1.0  # unsharp-mask radius in pixels
    percent: int = 80  # strength in percent
    threshold: int = 2  # minimum brightness change to sharpen (0-255)

    def validate(self) -> None:
        if self.radius <= 0:
            raise ValueError("radius: must be positive")
        if self.percent < 0:
            raise ValueError("percent: must be 0 or more")


class Sharpen(PostProcessor):
    Params = SharpenParams

    def __call__(self, content: Content) -> Content:
        from PIL import ImageFilter

        p = self.params
        flt = ImageFilter.UnsharpMask(radius=p.radius, percent=p.percent, threshold=p.threshold)
        return _map(content, lambda a: _unpil(_pil(a).filter(flt)), "sharpen")


@dataclass
class ContrastParams:
    low: float = 1.0  # percentile mapped to black
    high: float = 99.0  # percentile mapped to white

    def validate(self) -> None:
        if not 0 <= self.low < self.high <= 100:
            raise ValueError("low: need 0 <= low < high <= 100")


class Contrast(PostProcessor):
    Params = ContrastParams

    def __call__(self, content: Content) -> Content:
        lo_p, hi_p = self.params.low, self.params.high

        def stretch(a: np.ndarray) -> np.ndarray:
            lo, hi = np.percentile(a, [lo_p, hi_p])
            if hi - lo < 1e-6:
                return a
            return (a - lo) / (hi - lo)

        return _map(content, stretch, "contrast")


@dataclass
class UpscaleParams:
    size: Optional[int] = None  # target width and height in pixels (overrides factor)
    factor: Optional[float] = 2.0  # scale factor when size is not set
    method: Literal["bicubic", "lanczos"] = "lanczos"  # resampling filter

    def validate(self) -> None:
        if self.size is not None and not 1 <= self.size <= 4096:
            raise ValueError("size: must be between 1 and 4096")
        if self.size is None and (self.factor is None or not 0 < self.factor <= 16):
            raise ValueError("factor: must be in (0, 16] when size is not set")


class Upscale(PostProcessor):
    Params = UpscaleParams

    def __call__(self, content: Content) -> Content:
        from PIL import Image

        p = self.params
        resample = Image.Resampling.LANCZOS if p.method == "lanczos" else Image.Resampling.BICUBIC

        def resize(a: np.ndarray) -> np.ndarray:
            h, w = a.shape[1:]
            size = (p.size, p.size) if p.size else (max(1, round(w * p.factor)), max(1, round(h * p.factor)))
            return _unpil(_pil(a).resize(size, resample))

        return _map(content, resize, "upscale", method=p.method)


@dataclass
class ImageGridParams:
    nrow: int = 8  # images per row
    padding: int = 2  # pixels between images
    max_images: int = 64  # at most this many images in the grid

    def validate(self) -> None:
        if self.nrow < 1:
            raise ValueError("nrow: must be at least 1")
        if self.padding < 0:
            raise ValueError("padding: must be 0 or more")
        if self.max_images < 1:
            raise ValueError("max_images: must be at least 1")


class ImageGrid(PostProcessor):
    """Adds one item, a grid of the first ``max_images`` singles of equal shape, unless the
    generator already laid its output out as a grid (interpolations, traversals)."""

    Params = ImageGridParams

    def __call__(self, content: Content) -> Content:
        singles = _singles(content)[: self.params.max_images]
        if not singles or len(singles) < len(content.items):
            return content
        shape = np.asarray(singles[0].data).shape
        same = [i for i in singles if np.asarray(i.data).shape == shape]
        grid = make_grid([i.data for i in same], nrow=self.params.nrow, padding=self.params.padding)
        meta = {"kind": "grid", "indices": [i.meta.get("index") for i in same]}
        for key in ("generator", "run", "checkpoint_sha256", "seed"):
            if key in same[0].meta:
                meta[key] = same[0].meta[key]
        return content.replace([*content.items, Item(grid, meta)])
