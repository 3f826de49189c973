"""Spectrogram pictures a person can read: axes in seconds and Hz, a colour bar in dB, a title.

Drawn with numpy and Pillow alone (no matplotlib: the exporter runs on ``aigc generate``'s path,
where matplotlib's import would cost more than drawing every picture), then returned as CHW
float images so the exporter writes them like any other PNG (with provenance in tEXt chunks,
same bytes for the same clip). The colours are matplotlib's "magma" (``MAGMA``, a table made
once from it). Levels are dB relative to the loudest bin of the clip (or of the sheet), so a
quiet clip is not a black rectangle and clips on one sheet compare.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Sequence

import numpy as np

DYNAMIC_RANGE_DB = 80.0
INK = (0, 0, 0)
PAPER = (255, 255, 255)


def stft_db(wave: np.ndarray, rate: int) -> tuple[np.ndarray, float, float]:
    """(freq bins, frames) power in dB, plus the duration (s) and top frequency (Hz) it spans.

    About 32 ms Hann frames with an eighth-window hop: fine enough in time to see a digit's
    syllables, fine enough in frequency (31 Hz bins at 8 kHz) to see the harmonics of a voice.
    """
    n_fft = 2 ** int(round(np.log2(0.032 * rate)))
    hop = max(1, n_fft // 8)
    x = np.asarray(wave, np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * np.hanning(n_fft), axis=1)) ** 2
    return 10 * np.log10(np.maximum(power, 1e-12)).T, len(wave) / rate, rate / 2


# -- drawing ------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _font(size: int):
    """Pillow's own scalable font (Pillow >= 10.1 with FreeType); its bitmap font otherwise."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an older Pillow: one size only
        return ImageFont.load_default()


def _text(draw, xy: tuple[float, float], text: str, size: int, anchor: str = "lt") -> None:
    """``anchor``: horizontal l/m/r and vertical t/m/b of the text's ink box placed at ``xy``
    (computed here, so Pillow's bitmap font, which takes no anchors, works too)."""
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = xy[0] - left - {"l": 0.0, "m": (right - left) / 2, "r": right - left}[anchor[0]]
    y = xy[1] - top - {"t": 0.0, "m": (bottom - top) / 2, "b": bottom - top}[anchor[1]]
    draw.text((round(x), round(y)), text, fill=INK, font=font)


def _text_up(image, xy: tuple[float, float], text: str, size: int) -> None:
    """Text read bottom to top (an axis label), centred on ``xy``."""
    from PIL import Image, ImageDraw

    font = _font(size)
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((0, 0), text, font=font)
    mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(mask).text((1 - left, 1 - top), text, fill=255, font=font)
    mask = mask.transpose(Image.Transpose.ROTATE_90)
    image.paste(INK, (round(xy[0] - mask.width / 2), round(xy[1] - mask.height / 2)), mask)


def ticks(top: float, bottom: float = 0.0, most: int = 9) -> tuple[list[float], int]:
    """Round values from ``bottom`` to ``top`` (steps of 1, 2, 2.5 or 5 times a power of ten, at
    most ``most`` of them) and the decimals that print them exactly."""
    span = top - bottom
    if span <= 0:
        return [bottom], 0
    raw = span / max(1, most - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.ceil(bottom / step - 1e-9)
    values = [k * step for k in range(first, int(math.floor(top / step + 1e-9)) + 1)]
    decimals = 0
    while decimals < 6 and abs(round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6:
        decimals += 1
    return values, decimals


def _label(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text if float(text) != 0 else text.lstrip("-")  # no "-0"


class _Box:
    """Where a panel's picture goes: pixels ``[left, right) x [top, bottom)``, with the frame line
    drawn just outside; values map linearly onto the frame lines."""

    def __init__(self, left: int, top: int, width: int, height: int):
        self.left, self.top, self.right, self.bottom = left, top, left + width, top + height

    def x(self, value: float, span: float) -> int:
        return round(self.left - 1 + value / span * (self.right - self.left + 1))

    def y(self, value: float, low: float, high: float) -> int:
        return round(self.bottom - (value - low) / (high - low) * (self.bottom - self.top + 1))


def _axes(draw, box: _Box, seconds: float, nyquist: float, size: int, *, x_labels: bool = True,
          y_labels: bool = True, most: tuple[int, int] = (9, 9)) -> None:
    """The frame and ticks of one panel, with tick labels on the sides asked for."""
    draw.rectangle((box.left - 1, box.top - 1, box.right, box.bottom), outline=INK)
    values, decimals = ticks(seconds, most=most[0])
    for value in values:
        x = box.x(value, seconds)
        draw.line((x, box.bottom + 1, x, box.bottom + 4), fill=INK)
        if x_labels:
            _text(draw, (x, box.bottom + 7), _label(value, decimals), size, "mt")
    values, decimals = ticks(nyquist, most=most[1])
    for value in values:
        y = box.y(value, 0.0, nyquist)
        draw.line((box.left - 5, y, box.left - 2, y), fill=INK)
        if y_labels:
            _text(draw, (box.left - 8, y), _label(value, decimals), size, "rm")


def _colour_bar(image, draw, box: _Box, size: int, label: str, most: int = 9) -> None:
    """The colour scale from -DYNAMIC_RANGE_DB (bottom) to 0 dB (top), ticked and labelled."""
    rows = box.bottom - box.top
    level = (rows - 1 - np.arange(rows)) / max(1, rows - 1)
    colours = magma(level)[:, None, :].repeat(box.right - box.left, axis=1)
    _paste(image, colours, box)
    draw.rectangle((box.left - 1, box.top - 1, box.right, box.bottom), outline=INK)
    values, decimals = ticks(0.0, -DYNAMIC_RANGE_DB, most=most)
    widest = 0
    for value in values:
        y = box.y(value, -DYNAMIC_RANGE_DB, 0.0)
        draw.line((box.right + 1, y, box.right + 4, y), fill=INK)
        text = _label(value, decimals)
        _text(draw, (box.right + 7, y), text, size, "lm")
        left, _, right, _ = draw.textbbox((0, 0), text, font=_font(size))
        widest = max(widest, right - left)
    _text_up(image, (box.right + 7 + widest + 6 + size * 0.6, (box.top + box.bottom) / 2), label, size)


def _paste(image, rgb: np.ndarray, box: _Box) -> None:
    from PIL import Image

    image.paste(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), (box.left, box.top))


def _panel(db: np.ndarray, top: float, box: _Box) -> np.ndarray:
    """The clip's colours at the box's size: nearest bin and frame, low frequencies at the bottom."""
    index = colour_index(np.clip((db - top + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB, 0.0, 1.0)[::-1])
    height, width = box.bottom - box.top, box.right - box.left
    rows = np.arange(height) * index.shape[0] // height
    cols = np.arange(width) * index.shape[1] // width
    return MAGMA[index[rows[:, None], cols[None, :]]]  # binned before the (nearest) resampling: cheaper


def _chw(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0


# -- the pictures -------------------------------------------------------------------------------

#: one clip: 900 x 420 pixels, the plot box and the colour bar inside it
WIDTH, HEIGHT = 900, 420
PLOT = (72, 38, 702, 328)  # left, top, width, height
BAR = (790, 38, 18, 328)
_FRAMES: dict = {}


def spectrogram_image(wave: np.ndarray, rate: int, title: str = "") -> np.ndarray:
    """One clip, 900 x 420 pixels: time in seconds, frequency in Hz, a dB colour bar.

    The frame (axes, ticks, colour bar, title) is drawn once per clip length, rate and title, and
    the clip's colours are pasted into its box: an exporter draws many clips of one length.
    """
    db, seconds, nyquist = stft_db(wave, rate)
    top = max(float(db.max()), -120.0 + DYNAMIC_RANGE_DB)  # silence stays dark
    frame, box = _frame(round(seconds, 6), nyquist, title or f"{seconds:.2f} s at {rate} Hz")
    out = frame.copy()
    out[box.top:box.bottom, box.left:box.right] = _panel(db, top, box)
    return out.transpose(2, 0, 1).astype(np.float32) / 255.0


def _frame(seconds: float, nyquist: float, title: str) -> tuple[np.ndarray, _Box]:
    """The empty, labelled picture for a clip length and rate (HWC uint8), and its plot box."""
    key = (seconds, nyquist, title)
    if key not in _FRAMES:
        from PIL import Image, ImageDraw

        if len(_FRAMES) > 64:
            _FRAMES.clear()
        image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
        draw = ImageDraw.Draw(image)
        box, bar = _Box(*PLOT), _Box(*BAR)
        _axes(draw, box, max(seconds, 1e-9), nyquist, 14)
        _text(draw, ((box.left + box.right) / 2, box.bottom + 28), "time (s)", 14, "mt")
        _text_up(image, (14, (box.top + box.bottom) / 2), "frequency (Hz)", 14)
        _text(draw, ((box.left + box.right) / 2, box.top - 12), title, 15, "mb")
        _colour_bar(image, draw, bar, 14, "dB (re. loudest bin)")
        _FRAMES[key] = (np.asarray(image).copy(), box)
    return _FRAMES[key]


#: a contact sheet's panels: width, height, the gap between them (room for "0.5" beside "0.0")
SHEET_PANEL = (224, 132, 30)
SHEET_LEFT, SHEET_HEADING = 76, 40


def sheet_layout(count: int, columns: int) -> tuple[list[_Box], list[bool], int, int]:
    """Where the panels of ``count`` clips go in rows of ``columns``: their boxes, which of them
    carry time labels (those with nothing below them, as shared axes read), the page's size."""
    panel_w, panel_h, gap = SHEET_PANEL
    rows = (count + columns - 1) // columns
    labelled = [k // columns == rows - 1 or k + columns >= count for k in range(count)]
    row_tops, y = [], SHEET_HEADING
    for r in range(rows):
        y += 20  # the panel titles
        row_tops.append(y)
        y += panel_h + (36 if any(labelled[r * columns:(r + 1) * columns]) else 10)
    boxes = [_Box(SHEET_LEFT + (k % columns) * (panel_w + gap), row_tops[k // columns], panel_w, panel_h)
             for k in range(count)]
    return boxes, labelled, SHEET_LEFT + columns * panel_w + (columns - 1) * gap + 110, y + 4


def contact_sheet(waves: Sequence[np.ndarray], rate: int, titles: Sequence[str], title: str,
                  columns: int = 5) -> np.ndarray:
    """Many clips on one page, one shared dB scale (relative to the loudest clip on the page), axes
    labelled on the outer panels, so clips of one class can be compared at a glance."""
    from PIL import Image, ImageDraw

    spectra = [stft_db(w, rate) for w in waves]
    if not spectra:
        raise ValueError("contact_sheet: no clips")
    top = max(max(float(db.max()) for db, _, _ in spectra), -120.0 + DYNAMIC_RANGE_DB)
    columns = max(1, min(columns, len(spectra)))
    seconds = max(s for _, s, _ in spectra)
    nyquist = spectra[0][2]
    small = 12
    boxes, labelled, width, height = sheet_layout(len(spectra), columns)
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    for k, ((db, clip_seconds, _), box) in enumerate(zip(spectra, boxes)):
        panel_w, panel_h = box.right - box.left, box.bottom - box.top
        # a shorter clip fills its share of the shared time axis
        share = max(1, round(panel_w * clip_seconds / seconds)) if seconds > 0 else panel_w
        _paste(image, _panel(db, top, _Box(box.left, box.top, share, panel_h)), box)
        first_column = k % columns == 0
        _axes(draw, box, max(seconds, 1e-9), nyquist, small, x_labels=labelled[k], y_labels=first_column,
              most=(6, 5))
        _text(draw, ((box.left + box.right) / 2, box.top - 6), _fit(draw, titles[k], small, panel_w), small, "mb")
        if labelled[k]:
            _text(draw, ((box.left + box.right) / 2, box.bottom + 24), "s", small, "mt")
        if first_column:
            _text_up(image, (12, (box.top + box.bottom) / 2), "Hz", small)
    panels_right = max(box.right for box in boxes)
    _text(draw, ((SHEET_LEFT + panels_right) / 2, 12), _fit(draw, title, 16, width - 8), 16, "mt")
    bar_top, bar_bottom = boxes[0].top, max(box.bottom for box in boxes)
    _colour_bar(image, draw, _Box(panels_right + 22, bar_top, 14, bar_bottom - bar_top), small, "dB re. loudest bin",
                most=9 if bar_bottom - bar_top > 250 else 5)
    return _chw(image)


def _fit(draw, text: str, size: int, width: int) -> str:
    """``text``, shortened with an ellipsis to fit ``width`` pixels."""
    font = _font(size)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text + "\u2026"


def sheet_name(label: str) -> str:
    """A file-name-safe form of a class name: ``spectrograms_<label>.png``."""
    return "spectrograms_" + (re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "x") + ".png"


# -- the colour map -----------------------------------------------------------------------------

def colour_index(level: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] -> rows of ``MAGMA``, binned as matplotlib bins a 256-colour map."""
    return np.clip((np.asarray(level, np.float64) * 256).astype(np.intp), 0, 255)


def magma(level: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] -> uint8 RGB (..., 3)."""
    return MAGMA[colour_index(level)]


#: "magma" (Stéfan van der Walt and Nathaniel Smith, CC0), its 256 colours as matplotlib
#: lists them, rounded to 8 bits (rint(v * 255)); made once with
#: ``np.rint(matplotlib.colormaps["magma"](np.arange(256))[:, :3] * 255)``, checked by a test
MAGMA = np.frombuffer(bytes.fromhex(
    "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c08071e090720"
    "0a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b180f3d19103f1a10421c1044"
    "1d11471e114920114b21114e22115024125325125527125829115a2a115c2c115f2d11612f1163311165331067341069"
    "36106b38106c390f6e3b0f703d0f713f0f72400f74420f75440f764510774710784910784a10794c117a4e117b4f127b"
    "51127c52137c54137d56147d57157e59157e5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c81"
    "6a1c816b1d816d1d816e1e81701f81721f817320817521817621817822817922827b23827c23827e2482802582812581"
    "8326818426818627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f"
    "9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357bb3367ab5367a"
    "b73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73ca3e72cc3f71cd4071cf4070"
    "d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968df4a68e04c67e24d66e34e65e44f64e55064"
    "e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5eef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695c"
    "f56b5cf66c5cf66e5cf7705cf7725cf8745cf8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761"
    "fc8961fc8a62fc8c63fc8e64fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571"
    "fea772fea973feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287"
    "fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9efddea0fde0a1"
    "fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8fcf7b9fcf9bbfcfbbdfcfdbf"
), dtype=np.uint8).reshape(256, 3)
