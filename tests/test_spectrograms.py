"""The audio exporter's spectrogram pictures: drawn without matplotlib, read the right way round."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from aigc_core.builtin import spectrograms as sp

RATE = 8000


def tone_after_silence(freq: float = 1000.0, seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    """Near silence for the first half, a tone for the second."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) * (t >= seconds / 2)
    return (wave + 1e-5 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def colour_levels(chw: np.ndarray, box) -> np.ndarray:
    """The pixels of ``box`` as rows of the magma table (the nearest colour), a level per pixel."""
    rgb = np.rint(chw[:, box.top:box.bottom, box.left:box.right].transpose(1, 2, 0) * 255).astype(np.int32)
    colours, where = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)  # a picture has few colours
    distance = ((colours[:, None, :] - sp.MAGMA[None].astype(np.int32)) ** 2).sum(-1)
    return distance.argmin(-1)[where.reshape(-1)].reshape(rgb.shape[:2])


def test_magma_table_is_matplotlibs_magma():
    colormaps = pytest.importorskip("matplotlib").colormaps
    expected = np.rint(colormaps["magma"](np.arange(256))[:, :3].astype(np.float32) * 255).astype(np.uint8)
    assert sp.MAGMA.shape == (256, 3) and np.array_equal(sp.MAGMA, expected)
    levels = np.array([0.0, 0.3, 0.5, 0.999, 1.0])  # binned as matplotlib bins a level
    mapped = np.rint(colormaps["magma"](levels)[:, :3].astype(np.float32) * 255).astype(np.uint8)
    assert np.array_equal(sp.magma(levels), mapped)


def test_a_tone_is_drawn_at_its_frequency_and_after_the_silence():
    picture = sp.spectrogram_image(tone_after_silence(1000.0), RATE, "a tone")
    assert picture.shape == (3, sp.HEIGHT, sp.WIDTH) and picture.dtype == np.float32
    box = sp._Box(*sp.PLOT)
    levels = colour_levels(picture, box)
    height, width = levels.shape
    right = levels[:, width // 2 + 10:]
    row = int(right.mean(1).argmax())  # the brightest row in the tone's half
    hz = (box.bottom - (box.top + row + 0.5)) / height * RATE / 2  # low frequencies at the bottom
    assert abs(hz - 1000.0) < 40, hz
    assert right[row].mean() > 200 and levels[row, : width // 2 - 10].mean() < 40  # time runs left to right
    bar = colour_levels(picture, sp._Box(*sp.BAR))[:, 5]
    assert bar[0] > 250 and bar[-1] < 5 and np.all(np.diff(bar) <= 0)  # 0 dB at the top of the colour bar


def test_a_contact_sheet_shares_one_scale_across_its_clips():
    quiet = 0.01 * tone_after_silence(1000.0)
    loud = tone_after_silence(500.0)
    alone = sp.contact_sheet([quiet], RATE, ["quiet"], "one clip")
    shared = sp.contact_sheet([quiet, loud], RATE, ["quiet", "loud"], "two clips")
    boxes, labelled, width, height = sp.sheet_layout(2, 2)  # contact_sheet: no more columns than clips
    assert shared.shape == (3, height, width) and labelled == [True, True]
    first = sp.sheet_layout(1, 1)[0][0]
    # 40 dB quieter than the loudest clip on the page: about half the colour scale darker than alone
    drop = colour_levels(alone, first).max() - colour_levels(shared, boxes[0]).max()
    assert 100 < drop < 160, drop


def test_sheet_layout_labels_time_only_where_nothing_is_below():
    _, labelled, _, _ = sp.sheet_layout(7, 5)
    assert labelled == [False, False, True, True, True, True, True]


def test_the_frame_is_drawn_once_per_clip_length_and_title(monkeypatch):
    drawn = []
    original = sp._axes
    monkeypatch.setattr(sp, "_axes", lambda *a, **k: (drawn.append(1), original(*a, **k))[1])
    monkeypatch.setattr(sp, "_FRAMES", {})
    wave = tone_after_silence()
    first = sp.spectrogram_image(wave, RATE, "label a")
    for _ in range(3):
        again = sp.spectrogram_image(wave, RATE, "label a")
    assert len(drawn) == 1 and np.array_equal(first, again)
    sp.spectrogram_image(wave, RATE, "label b")
    assert len(drawn) == 2


def test_ticks_are_round_and_print_exactly():
    assert sp.ticks(0.5) == ([0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5], 1)
    values, decimals = sp.ticks(4000.0)
    assert values == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000] and decimals == 0
    values, decimals = sp.ticks(0.0, -80.0, most=5)
    assert values == [-80, -60, -40, -20, 0] and [sp._label(v, decimals) for v in values][-1] == "0"


def test_pictures_and_the_exporter_never_import_matplotlib(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from aigc_core.builtin.exporters import WAVExporter\n"
        "from aigc_core.contract.content import Content, Item\n"
        "t = np.arange(4000) / 8000\n"
        "items = [Item((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),"
        " {'index': i, 'sample_rate': 8000, 'label': i % 2}) for i in range(3)]\n"
        f"files = WAVExporter().export(Content('audio', items), {str(tmp_path)!r})\n"
        "print(len(files), sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] == 'matplotlib'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=300)
    assert out.returncode == 0, out.stderr
    # 3 WAVs, 3 pictures, the overview and a sheet per label
    assert out.stdout.split() == ["9", "[]"], out.stdout
