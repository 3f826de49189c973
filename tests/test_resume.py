"""When checkpoints are written during training, and which are kept."""

from __future__ import annotations

import itertools

import pytest

from aigc_testutil import cli, tiny_gan_config

# sklearn digits, limit 80: 64 training images in 4 batches of 16 per epoch, two optimiser steps each
DATA = {"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 80}


def fit(tmp_path, **train) -> dict:
    from aigc_core import Pipeline

    base = {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
            "checkpoint_every_minutes": 0}
    pipe = Pipeline.from_config(tiny_gan_config(tmp_path / "run", data=DATA, train={**base, **train}, postprocess=[]))
    pipe.fit()
    return pipe.manifest()


def test_epoch_checkpoints_and_none(tmp_path):
    assert fit(tmp_path / "a", checkpoint_every_n_epochs=1)["training"]["checkpoints_written"] == 2  # each epoch's end
    assert fit(tmp_path / "b", max_epochs=4, checkpoint_every_n_epochs=2)["training"]["checkpoints_written"] == 2
    off = fit(tmp_path / "c")["training"]  # the defaults of a short run: no interval falls due
    assert off["checkpoints_written"] == 1  # only the final one, a resume point however training ends


def test_time_checkpoints_fall_due_on_the_training_clock(tmp_path, monkeypatch):
    import aigc_core.train.training as training

    minutes = itertools.count()
    monkeypatch.setattr(training, "_clock", lambda: 60.0 * next(minutes))  # a minute passes between two looks
    manifest = fit(tmp_path, checkpoint_every_n_epochs=0, checkpoint_every_minutes=1.5)
    # a look per batch end and one per save: due every second batch; the due ones at an epoch's last batch
    # are written at the epoch's end
    assert manifest["training"]["checkpoints_written"] >= 3
    assert fit(tmp_path / "late", checkpoint_every_n_epochs=0,
               checkpoint_every_minutes=10**6)["training"]["checkpoints_written"] == 1


def test_keep_more_checkpoints(tmp_path):
    from aigc_core.store.checkpoints import verify_checkpoint

    manifest = fit(tmp_path, max_epochs=3, checkpoint_every_n_steps=4, checkpoint_keep=3)
    run = tmp_path / "run"
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    # saves at steps 4, 8, 12, 16, 20, 24: the newest is last.ckpt and also step00000024.ckpt
    assert names == ["last.ckpt", "step00000020.ckpt", "step00000024.ckpt"]
    assert sorted(manifest["checkpoints"]) == names
    for name in names:
        verify_checkpoint(run, run / "checkpoints" / name)
    assert (run / "checkpoints/last.ckpt").read_bytes() == (run / "checkpoints/step00000024.ckpt").read_bytes()


@pytest.mark.parametrize("key,value,message", [
    ("checkpoint_every_n_steps", -1, "train.checkpoint_every_n_steps: must be 0 or more"),
    ("checkpoint_every_minutes", -0.5, "train.checkpoint_every_minutes: must be 0 or more"),
    ("checkpoint_keep", 0, "train.checkpoint_keep: must be at least 1"),
])
def test_bad_checkpoint_settings_are_one_line_usage_errors(tmp_path, capsys, key, value, message):
    from aigc_testutil import write_yaml

    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(tmp_path / "run"))
    code, _, err = cli(capsys, "check", str(config), f"train.{key}={value}")
    assert code == 2 and err.strip() == f"aigc: error: {message}"
