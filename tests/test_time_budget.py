"""`train.max_time` / `train.max_minutes`: a training budget in time, kept across a resume."""

from __future__ import annotations

import itertools

import pytest

from aigc_testutil import tiny_gan_config

# sklearn digits, limit 80: 64 training images in 4 batches of 16 per epoch
DATA = {"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 80}


@pytest.fixture
def fake_clock(monkeypatch):
    """Lightning's Timer reads a clock that moves one second each time it is read: training time
    becomes a count of looks, the same on a loaded machine as on an idle one."""
    import types

    import pytorch_lightning.callbacks.timer as timer

    ticks = itertools.count()
    monkeypatch.setattr(timer, "time", types.SimpleNamespace(monotonic=lambda: float(next(ticks))))


def fit(out, **train) -> dict:
    from aigc_core import Pipeline

    base = {"max_epochs": 20, "accelerator": "cpu", "sample_every_n_epochs": 0, "checkpoint_every_minutes": 0,
            "limit_val_batches": 0}
    pipe = Pipeline.from_config(tiny_gan_config(out, data=DATA, train={**base, **train}, postprocess=[]))
    pipe.fit()
    return pipe.manifest()["training"]


def test_max_time_stops_training_records_it_and_a_resume_gets_what_is_left(tmp_path, fake_clock, capsys):
    first = fit(tmp_path / "run", max_time={"seconds": 40})
    budget = first["time_budget"]
    assert budget["stopped"] and budget["max_time_s"] == 40 and budget["used_s"] >= 40
    assert 0 < first["global_step"] and first["epochs"] < 10  # the budget ended it, not max_epochs (20)
    assert "training stopped at its time budget" in capsys.readouterr().err
    # the same budget again: already spent, nothing more is trained
    again = fit(tmp_path / "run", max_time={"seconds": 40})
    assert again["global_step"] == first["global_step"] and again["resumed_from"]["step"] == first["global_step"]
    # a larger budget (a resumable change): the resumed run trains for what is left, not for all of it
    more = fit(tmp_path / "run", max_minutes=1.0)
    assert more["time_budget"]["stopped"] and more["time_budget"]["used_s"] >= 60
    gained = more["global_step"] - first["global_step"]
    assert 0 < gained < first["global_step"], (first, more)  # 20 more seconds after 40: about half as many


@pytest.mark.parametrize("train,key,message", [
    ({"max_time": "1:30"}, "train.max_time", "expected 'DD:HH:MM:SS'"),
    ({"max_time": {"hourz": 1}}, "train.max_time.hourz", "unknown unit; did you mean 'hours'?"),
    ({"max_time": {"minutes": 0}}, "train.max_time", "must be a positive duration"),
    ({"max_time": "00:00:01:00", "max_minutes": 1}, "train.max_minutes", "set either max_time or max_minutes"),
    ({"max_minutes": 0}, "train.max_minutes", "must be positive"),
])
def test_bad_budgets_are_config_errors(tmp_path, train, key, message):
    from aigc_core import ConfigError, Pipeline

    with pytest.raises(ConfigError) as caught:
        Pipeline.from_config(tiny_gan_config(tmp_path, train={"max_epochs": 1, **train}))
    assert str(caught.value).startswith(f"{key}: ") and message in str(caught.value)


def test_a_time_budget_alone_may_end_training(tmp_path):
    from aigc_core import Pipeline
    from aigc_core.train.training import trainer_kwargs

    pipe = Pipeline.from_config(tiny_gan_config(tmp_path, train={"max_epochs": 0, "max_time": "00:01:30:00"}))
    kwargs = trainer_kwargs(pipe.train)
    assert kwargs["max_time"].total_seconds() == 5400 and kwargs["max_epochs"] == -1
