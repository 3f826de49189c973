"""data.include / data.exclude: folder sources read the files a user names, and say which key emptied the list."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from aigc_core import ConfigError
from aigc_core.store.config import build_params

RATE = 8000


def _clip(path, freq=300.0):
    t = np.arange(RATE // 4) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)


def _fsdd(root):
    for speaker in ("george", "jackson", "theo"):
        for digit in range(2):
            _clip(root / f"{digit}_{speaker}_0.wav")
    return root


def _audio(root, **values):
    from aigc_core.builtin.audio_sources import AudioFolder

    params = build_params(AudioFolder.Params, {"path": str(root), "sample_rate": RATE, "duration": 0.25,
                                                "labels": "pattern", "label_pattern": r"^(?P<label>\d)_",
                                                "val_fraction": 0, "test_fraction": 0, **values}, "data")
    source = AudioFolder(params)
    source.setup()
    return source


def test_audio_folder_include_and_exclude_choose_speakers(tmp_path):
    root = _fsdd(tmp_path)
    assert len(_audio(root).split("train")) == 6
    assert len(_audio(root, include=r"^\d_(george|jackson)_").split("train")) == 4
    assert len(_audio(root, exclude="_theo_").split("train")) == 4
    assert len(_audio(root, include="theo").split("train")) == 2
    assert len(_audio(root, include="_(george|theo)_", exclude="theo").split("train")) == 2


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_a_bad_regex_names_its_key(tmp_path, key):
    from aigc_core.builtin.audio_sources import AudioFolder

    with pytest.raises(ConfigError, match=rf"^data\.{key}: not a regular expression"):
        build_params(AudioFolder.Params, {"path": str(tmp_path), key: "(theo"}, "data")


def test_nothing_matching_is_one_line_naming_the_key(tmp_path):
    root = _fsdd(tmp_path)
    with pytest.raises(ConfigError, match=r"^data\.include: 'teho' matches none of the 6 files") as info:
        _audio(root, include="teho")
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"^data\.exclude: .* excludes all 6 files"):
        _audio(root, exclude="wav")


def test_cli_reports_an_unmatched_include_in_one_line_and_writes_nothing(tmp_path, capsys):
    from aigc_testutil import cli, write_yaml

    (tmp_path / "clips").mkdir()
    root = _fsdd(tmp_path / "clips")
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", {
        "name": "x", "data": {"source": "audio-folder", "path": str(root), "sample_rate": RATE, "duration": 0.25,
                              "include": "^9_"},
        "generator": {"name": "mel-vae", "size": "debug"}, "train": {"max_steps": 1, "accelerator": "cpu"},
        "metrics": [], "output": {"dir": str(out)}})
    code, _, err = cli(capsys, "run", str(config))
    assert code == 2 and err.strip().splitlines()[-1].startswith("aigc: error: data.include: '^9_' matches none")
    assert not out.exists()


def test_image_folder_selection_and_hidden_litter(tmp_path):
    from PIL import Image

    from aigc_core.builtin.image_sources import ImageFolder

    for rel in ("cats/a.png", "cats/b.png", "dogs/c.png", "drafts/d.png", ".ipynb_checkpoints/e.png", "dogs/.f.png"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 128).save(path)

    def load(**values):
        params = build_params(ImageFolder.Params, {"path": str(tmp_path), "image_size": 8, "channels": 1,
                                                    "val_fraction": 0, "test_fraction": 0, **values}, "data")
        source = ImageFolder(params)
        source.setup()
        return source

    everything = load()
    assert everything.classes == ["cats", "dogs", "drafts"]  # the hidden folder and file are no class, no image
    assert len(everything.split("train")) == 4
    chosen = load(exclude="^drafts/")
    assert chosen.classes == ["cats", "dogs"] and len(chosen.split("train")) == 3


def test_text_files_selection_in_a_folder(tmp_path):
    from aigc_core.builtin.text_sources import TextFiles

    for name, text in (("mine/a.txt", "alpha"), ("mine/b.txt", "beta"), ("notes/todo.txt", "gamma")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    params = build_params(TextFiles.Params, {"path": str(tmp_path), "include": "^mine/", "val_fraction": 0}, "data")
    assert TextFiles(params).documents() == ["alpha", "beta"]
    params = build_params(TextFiles.Params, {"path": str(tmp_path), "include": "^theirs/"}, "data")
    with pytest.raises(ConfigError, match=r"^data\.include: '\^theirs/' matches none of the 3 files"):
        TextFiles(params).documents()


def test_aigc_check_sees_an_unmatched_include_before_any_data_is_read(tmp_path, capsys):
    from aigc_testutil import cli, write_yaml

    (tmp_path / "clips").mkdir()
    root = _fsdd(tmp_path / "clips")
    config = write_yaml(tmp_path / "c.yaml", {
        "name": "x", "data": {"source": "audio-folder", "path": str(root), "include": "_teho_"},
        "generator": {"name": "mel-vae", "size": "debug"}, "metrics": [], "output": {"dir": str(tmp_path / "run")}})
    code, _, err = cli(capsys, "check", str(config))
    assert code == 2 and "data.include: '_teho_' matches none of the 6 files" in err
    code, out, _ = cli(capsys, "check", str(config), "data.include=_theo_")
    assert code == 0
