"""Long work is never silent: each phase of `aigc run` and `aigc generate` shows on stderr what runs,
done/total and the time left (plain lines when stderr is not a terminal, as here); --quiet hides it."""

from __future__ import annotations

import re

import pytest

from aigc_testutil import cli, tiny_gan_config, write_yaml


@pytest.fixture
def plain(monkeypatch):
    """Progress as a log shows it, a line at every update (the root conftest turns it off)."""
    monkeypatch.setenv("AIGC_PROGRESS", "auto")  # auto: stderr is not a terminal here, so plain lines
    monkeypatch.setenv("AIGC_PROGRESS_INTERVAL", "0")


def phase_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("aigc: ") and not line.startswith("aigc: error")]


def test_generate_shows_each_phase_with_done_and_total(trained_run, tmp_path, capsys, plain):
    code, out, err = cli(capsys, "generate", str(trained_run), "-n", "5", "--out", str(tmp_path / "a"))
    assert code == 0
    lines = phase_lines(err)
    assert "aigc: loading the model (dcgan): started" in lines
    assert "aigc: generating: started (5 to do)" in lines
    assert any(re.fullmatch(r"aigc: generating: done \(5/5, \d+s\)", line) for line in lines), lines
    assert any(line.startswith("aigc: exporting: done (6/6") for line in lines), lines  # 5 and the grid
    assert any(line.startswith("aigc: post-processing: done (1/1") for line in lines), lines

    code, out, err = cli(capsys, "generate", str(trained_run), "-n", "5", "--out", str(tmp_path / "b"), "--quiet")
    assert code == 0 and phase_lines(err) == [], err


class _Stepper:
    """A generator that works in four steps and says so, as a diffusion sampler does."""

    modality = "image"

    def generate(self, n, seed, options):
        import numpy as np

        from aigc_core import Content, Item, report_progress

        for step in range(1, 5):
            report_progress(step, 4)
        return Content("image", [Item(np.zeros((1, 2, 2), np.float32), {}) for _ in range(n)])


def test_a_generators_own_steps_move_the_line_in_samples(plain, capsys):
    """``report_progress(step, 4)`` inside a phase of 8 samples shows 2/8, 4/8, 6/8, 8/8; without a
    display (the Python API, the server) the same generation prints nothing."""
    from aigc_core import Inference
    from aigc_core.contract import progress

    inference = Inference(_Stepper(), generator_name="stepper", run_name="r", modality="image",
                          validate_options=lambda options, prefix: dict(options), defaults={}, num_samples=8, seed=0)
    inference.generate(8)
    assert capsys.readouterr().err == ""
    with progress.showing():
        inference.generate(8)
    lines = phase_lines(capsys.readouterr().err)
    moved = [re.search(r"generating: (\d+/\d+)", line).group(1) for line in lines if "elapsed" in line]
    assert moved == ["2/8", "4/8", "6/8", "8/8"], lines
    # the server passes its own callback: it gets the generator's steps, and the display does not
    seen = []
    with progress.showing():
        inference.generate(8, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_tiny_run_shows_every_phase_training_with_the_whole_runs_share(tmp_path, capsys, plain, monkeypatch):
    monkeypatch.setenv("AIGC_CACHE_DIR", str(tmp_path / "cache"))
    config = tiny_gan_config(tmp_path / "run", metrics=[{"name": "frechet", "num_samples": 10,
                                                           "classifier_epochs": 1}])
    config["train"].update(max_epochs=2, sample_every_n_epochs=0, progress_bar=True)
    code, _, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 0, err
    lines = phase_lines(err)
    started = [line.split(":")[1].strip() for line in lines if line.endswith(": started") or ": started (" in line]
    assert started[:3] == ["reading data (sklearn-digits)", "building the generator (dcgan)", "training"], started
    for name in ("generating", "post-processing", "exporting", "metric frechet",
                 "metric frechet > training the scoring classifier"):
        assert any(line.startswith(f"aigc: {name}: done") for line in lines), (name, lines)
    # training: the share of the whole run (both epochs), with the epoch and the time left
    training = [line for line in lines if line.startswith("aigc: training: ") and "elapsed" in line]
    assert any(re.search(r"training: \d+%, epoch 2/2, step \d+", line) for line in training), training
    assert any("left" in line for line in training), training
    # the classifier's training reports its batches: done/total of the whole training
    assert any(re.search(r"training the scoring classifier: \d+/\d+", line) for line in lines), lines
    # a log gets no carriage-return bar from Lightning, and --quiet hides everything
    assert "\r" not in err
    code, _, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)), "--quiet", "--restart")
    assert code == 0 and phase_lines(err) == [] and "\r" not in err


def test_a_phase_that_reports_nothing_still_shows_in_a_log(monkeypatch, capsys):
    """One long step (a forward pass, a file written) gives no update: the log still gets a line
    whenever it has been silent for AIGC_PROGRESS_INTERVAL seconds, so it never looks hung."""
    import time

    from aigc_core.contract import progress

    monkeypatch.setenv("AIGC_PROGRESS", "plain")
    monkeypatch.setenv("AIGC_PROGRESS_INTERVAL", "0.2")
    with progress.showing(), progress.phase("thinking"):
        time.sleep(1.2)
    lines = phase_lines(capsys.readouterr().err)
    assert lines[0] == "aigc: thinking: started" and lines[-1].startswith("aigc: thinking: done")
    assert sum(1 for line in lines if re.fullmatch(r"aigc: thinking \(\d+s elapsed\)", line)) >= 2, lines


def test_a_lazy_phase_shows_only_once_it_lasts(monkeypatch, capsys):
    """Importing torch and checking the config are lazy phases: quick, they print nothing (so a
    config error found inside one stays the one line it is); slow, as on a busy machine, they get
    the heartbeat and an end like any phase, so the start of a command is never silent."""
    import time

    from aigc_core.contract import progress

    monkeypatch.setenv("AIGC_PROGRESS", "plain")
    monkeypatch.setenv("AIGC_PROGRESS_INTERVAL", "0.3")
    with progress.showing():
        with progress.phase("quick", lazy=True):
            pass
        with pytest.raises(ValueError), progress.phase("quick and failing", lazy=True):
            raise ValueError("a config error")
    assert phase_lines(capsys.readouterr().err) == []
    with progress.showing(), progress.phase("slow", lazy=True):
        time.sleep(1.0)
    lines = phase_lines(capsys.readouterr().err)
    assert any(re.fullmatch(r"aigc: slow \(\d+s elapsed\)", line) for line in lines), lines
    assert lines[-1].startswith("aigc: slow: done"), lines
