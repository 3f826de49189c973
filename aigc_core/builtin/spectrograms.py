"""Spectrogram pictures a person can read: axes in seconds and Hz, a colour bar in dB.

Rendered with matplotlib's object API on an Agg canvas (no pyplot state, no display), then
returned as CHW float images so the exporter writes them like any other PNG (with provenance
in tEXt chunks, same bytes for the same clip). Levels are dB relative to the loudest bin of the
clip (or of the sheet), so a quiet clip is not a black rectangle and clips on one sheet compare.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

DYNAMIC_RANGE_DB = 80.0


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


def _canvas_image(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1), dtype=np.float32) / 255.0


def _draw(ax, db: np.ndarray, seconds: float, nyquist: float, top: float):
    return ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0.0, seconds, 0.0, nyquist),
                     vmin=top - DYNAMIC_RANGE_DB, vmax=top, interpolation="nearest")


def spectrogram_image(wave: np.ndarray, rate: int, title: str = "") -> np.ndarray:
    """One clip, 900 x 420 pixels: time in seconds, frequency in Hz, a dB colour bar.

    The frame (axes, ticks, colour bar, title) is drawn by matplotlib once per clip length, rate
    and title and the clip's colours are pasted into the axes' pixels: drawing tick labels costs
    about half a second a picture, longer than generating the clip.
    """
    from matplotlib import colormaps

    db, seconds, nyquist = stft_db(wave, rate)
    top = max(float(db.max()), -120.0 + DYNAMIC_RANGE_DB)  # silence stays dark
    frame, (row0, row1, col0, col1) = _frame(round(seconds, 6), nyquist, title or f"{seconds:.2f} s at {rate} Hz")
    level = np.clip((db - top + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB, 0.0, 1.0)[::-1]  # low frequencies at the bottom
    rows = (np.arange(row1 - row0) * level.shape[0] // (row1 - row0))
    cols = (np.arange(col1 - col0) * level.shape[1] // (col1 - col0))
    rgb = colormaps["magma"](level[rows][:, cols])[..., :3].transpose(2, 0, 1)
    out = frame.copy()
    out[:, row0:row1, col0:col1] = rgb
    return out


_FRAMES: dict = {}


def _frame(seconds: float, nyquist: float, title: str):
    """The empty, labelled picture for a clip length and rate, and where its axes' pixels are."""
    key = (seconds, nyquist, title)
    if key not in _FRAMES:
        from matplotlib.figure import Figure

        if len(_FRAMES) > 64:
            _FRAMES.clear()
        fig = Figure(figsize=(9, 4.2), dpi=100)
        ax = fig.add_axes((0.08, 0.12, 0.78, 0.78))
        cax = fig.add_axes((0.88, 0.12, 0.02, 0.78))
        blank = ax.imshow(np.zeros((2, 2)), origin="lower", aspect="auto", cmap="magma",
                          extent=(0.0, seconds, 0.0, nyquist), vmin=-DYNAMIC_RANGE_DB, vmax=0.0)
        fig.colorbar(blank, cax=cax).set_label("dB (re. loudest bin)")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(title, fontsize=11)
        image = _canvas_image(fig)
        height = image.shape[1]
        box = ax.get_window_extent()  # display pixels, origin at the bottom left
        row0, row1 = height - int(np.floor(box.y1)) + 1, height - int(np.ceil(box.y0)) - 1
        col0, col1 = int(np.ceil(box.x0)) + 1, int(np.floor(box.x1)) - 1
        _FRAMES[key] = (image, (row0, row1, col0, col1))
    return _FRAMES[key]


def contact_sheet(waves: Sequence[np.ndarray], rate: int, titles: Sequence[str], title: str,
                  columns: int = 5) -> np.ndarray:
    """Many clips on one page, one shared dB scale (relative to the loudest clip on the page), axes
    labelled on the outer panels, so clips of one class can be compared at a glance."""
    from matplotlib.figure import Figure

    spectra = [stft_db(w, rate) for w in waves]
    top = max(max(float(db.max()) for db, _, _ in spectra), -120.0 + DYNAMIC_RANGE_DB)
    columns = max(1, min(columns, len(spectra)))
    rows = (len(spectra) + columns - 1) // columns
    fig = Figure(figsize=(2.6 * columns + 1.2, 2.0 * rows + 0.8), dpi=100)
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= len(spectra):
            ax.set_axis_off()
            continue
        db, seconds, nyquist = spectra[k]
        image = _draw(ax, db - top, seconds, nyquist, 0.0)
        ax.set_title(titles[k], fontsize=9)
        if k % columns == 0:
            ax.set_ylabel("Hz")
        if k // columns == rows - 1 or k + columns >= len(spectra):
            ax.set_xlabel("s")
            ax.tick_params(labelbottom=True)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.91, 0.12, 0.015, 0.76))
    fig.colorbar(image, cax=cax).set_label("dB re. loudest bin")
    return _canvas_image(fig)


def sheet_name(label: str) -> str:
    """A file-name-safe form of a class name: ``spectrograms_<label>.png``."""
    return "spectrograms_" + (re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "x") + ".png"
