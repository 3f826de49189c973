"""Image post-processors. They work on numpy CHW floats in [0, 1] and need no torch."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

from aigc_core.contract.base import PostProcessor
from aigc_core.contract.content import Content, Item
from aigc_core.helpers.imaging import from_uint8_hwc, make_grid, to_uint8_hwc
from aigc_core.contract.params import Field, ParamError, Params, field_validator, model_validator


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


class DenoiseParams(Params):
    method: Literal["median", "gaussian"] = Field("median", description="median filter or Gaussian blur")
    size: int = Field(3, ge=1, description="median window (odd)")
    sigma: float = Field(0.8, gt=0, description="gaussian radius in pixels")

    @field_validator("size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"must be odd, got {size}")
        return size


class Denoise(PostProcessor):
    Params = DenoiseParams

    def __call__(self, content: Content) -> Content:
        from PIL import ImageFilter

        p = self.params
        flt = ImageFilter.MedianFilter(p.size) if p.method == "median" else ImageFilter.GaussianBlur(p.sigma)
        return _map(content, lambda a: _unpil(_pil(a).filter(flt)), "denoise", method=p.method)


class SharpenParams(Params):
    radius: float = Field(1.0, gt=0, description="unsharp-mask radius in pixels")
    percent: int = Field(80, ge=0, description="strength in percent")
    threshold: int = Field(2, description="minimum brightness change to sharpen (0-255)")


class Sharpen(PostProcessor):
    Params = SharpenParams

    def __call__(self, content: Content) -> Content:
        from PIL import ImageFilter

        p = self.params
        flt = ImageFilter.UnsharpMask(radius=p.radius, percent=p.percent, threshold=p.threshold)
        return _map(content, lambda a: _unpil(_pil(a).filter(flt)), "sharpen")


class ContrastParams(Params):
    low: float = Field(1.0, ge=0, le=100, description="percentile mapped to black")
    high: float = Field(99.0, ge=0, le=100, description="percentile mapped to white")

    @model_validator(mode="after")
    def _ordered(self) -> "ContrastParams":
        if self.low >= self.high:
            raise ParamError("low", f"must be below high ({self.high})")
        return self


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


class UpscaleParams(Params):
    size: Optional[int] = Field(None, ge=1, le=4096, description="target width and height in pixels (overrides factor)")
    factor: Optional[float] = Field(2.0, gt=0, le=16, description="scale factor when size is not set")
    method: Literal["bicubic", "lanczos"] = Field("lanczos", description="resampling filter")

    @model_validator(mode="after")
    def _size_or_factor(self) -> "UpscaleParams":
        if self.size is None and self.factor is None:
            raise ParamError("factor", "must be set when size is not")
        return self


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


class ImageGridParams(Params):
    nrow: int = Field(8, ge=1, description="images per row")
    padding: int = Field(2, ge=0, description="pixels between images")
    max_images: int = Field(64, ge=1, description="at most this many images in the grid")


class ImageGrid(PostProcessor):
    """Adds one item, a grid of the first ``max_images`` singles of equal shape, unless the
    generator already laid its output out as a grid (interpolations, traversals)."""

    Params = ImageGridParams

    def __call__(self, content: Content) -> Content:
        singles = _singles(content)
        if not singles or len(singles) < len(content.items):  # a grid is there already
            return content
        singles = singles[: self.params.max_images]
        shape = np.asarray(singles[0].data).shape
        same = [i for i in singles if np.asarray(i.data).shape == shape]
        grid = make_grid([i.data for i in same], nrow=self.params.nrow, padding=self.params.padding)
        meta = {"kind": "grid", "indices": [i.meta.get("index") for i in same]}
        for key in ("generator", "run", "checkpoint_sha256", "seed"):
            if key in same[0].meta:
                meta[key] = same[0].meta[key]
        return content.replace([*content.items, Item(grid, meta)])
