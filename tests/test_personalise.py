"""Personalised runs: a base, an adapter trained on a few of a user's examples, and what they promise.

The promises under test: the adapter moves what the model makes toward the user's examples (and
nothing does without it); turned off, the base's bytes come back; the run stores the adapter alone
and loads only on the base it was trained on; merged, it is a standalone run that makes what the
adapter made; and every bad config is one line naming its key, with nothing written.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aigc_testutil import cli, write_yaml

pytestmark = pytest.mark.timeout(300)

DIGITS = {"source": "sklearn-digits", "image_size": 16, "batch_size": 16, "limit": 200}
VAE_TARGETS = ["decoder.fc.0", "decoder.fc.2", "decoder.convs.0"]


def _config(name: str, out: Path, data: dict, generator: dict, steps: int, **train) -> dict:
    return {
        "name": name, "seed": 0, "data": data, "generator": generator,
        "train": {"max_epochs": 50, "max_steps": steps, "accelerator": "cpu", "progress_bar": False,
                  "sample_every_n_epochs": 0, "limit_val_batches": 0, **train},
        "generate": {"num_samples": 8}, "metrics": [], "output": {"dir": str(out)},
    }


def _inverted_digits(folder: Path, per_class: int = 4) -> Path:
    """A user's few examples in another hand: white digits become black on white (a folder per class)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        picks = np.flatnonzero(digits.target == label)[:per_class]
        for i, index in enumerate(picks):
            image = 255 - (digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(image).resize((16, 16)).save(folder / str(label) / f"{i}.png")
    return folder


def _pixels(content) -> np.ndarray:
    return np.stack([np.asarray(item.data, dtype=np.float64) for item in content.items])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A base VAE on digits, and an adapter trained on 40 inverted digits (a few seconds each)."""
    from aigc_core import Pipeline

    root = tmp_path_factory.mktemp("personalise")
    base = root / "base"
    Pipeline.from_config(_config("base", base, DIGITS, {"name": "vae", "size": "debug"}, 60)).run()
    folder = _inverted_digits(root / "mine")
    data = {"source": "image-folder", "path": str(folder), "channels": 1, "image_size": 16, "batch_size": 8,
            "val_fraction": 0.0, "test_fraction": 0.0}
    adapter = {"rank": 4, "alpha": 8, "targets": VAE_TARGETS}
    mine = root / "mine-run"
    config = _config("mine", mine, data, {"name": "vae", "base": str(base), "adapter": adapter, "lr": 0.03}, 150)
    Pipeline.from_config(config).run()
    return {"root": root, "base": base, "mine": mine, "config": config, "folder": folder}


def test_the_adapter_moves_the_content_toward_the_users_examples(runs):
    from aigc_core import Run
    from aigc_core.generation.adapters import disabled

    base = _pixels(Run.load(runs["base"]).generate(16, seed=5))
    mine = Run.load(runs["mine"])
    adapted = _pixels(mine.generate(16, seed=5))
    with disabled(mine.generator):
        off = _pixels(mine.generate(16, seed=5))
    # the examples are dark digits on white (mean brightness 0.70); the base's are light on black
    from aigc_core import Pipeline

    source = Pipeline.from_config(runs["config"]).data_source()
    target = float(source.split("train").data.mean())
    moved = (adapted.mean() - base.mean()) / (target - base.mean())
    assert moved > 0.4, (adapted.mean(), base.mean(), target)
    # without the adapter the same run makes the base's content, exactly
    assert np.array_equal(off, base)


def test_a_personalised_run_keeps_the_adapter_only_and_names_its_base(runs):
    from aigc_core import Run
    from aigc_core.generation.adapters import parameter_count, read_adapter

    manifest = json.loads((runs["mine"] / "manifest.json").read_text())
    assert sorted(p.name for p in (runs["mine"] / "model").iterdir()) == ["adapter.json", "adapter.safetensors"]
    base_run = Run.load(runs["base"])
    assert manifest["base"]["kind"] == "run" and manifest["base"]["fingerprint"] == base_run.fingerprint
    assert manifest["adapter"]["rank"] == 4
    _, _, state = read_adapter(runs["mine"] / "model")
    base_parameters = sum(v.numel() for v in base_run.generator.artifact_state().values())
    assert 0 < parameter_count(state) <= 0.2 * base_parameters  # rank 4 on a debug VAE; tiny nets are narrow
    # the run inherited the base's parameters it did not set, and kept the ones it did
    mine = Run.load(runs["mine"])
    assert mine.pipeline.gen.params.size == "debug" and mine.pipeline.gen.params.lr == 0.03


def test_it_loads_only_on_the_base_it_was_trained_on(runs, tmp_path, capsys):
    from aigc_core import ConfigError, Pipeline, Run

    other = tmp_path / "other-base"
    config = _config("base", other, DIGITS, {"name": "vae", "size": "debug"}, 3)
    config["seed"] = 9
    Pipeline.from_config(config).run()
    moved = tmp_path / "mine"
    shutil.copytree(runs["mine"], moved)
    stored = (moved / "config.yaml").read_text().replace(str(runs["base"]), str(other))
    (moved / "config.yaml").write_text(stored)
    with pytest.raises(ConfigError, match="generator.base: .*fingerprint"):
        Run.load(moved)
    code, out, err = cli(capsys, "generate", str(moved), "-n", "2", "--out", str(tmp_path / "gen"))
    assert code == 2 and "fingerprint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "gen").exists()


def test_merged_export_is_standalone_and_makes_what_the_adapter_made(runs, tmp_path, capsys):
    from aigc_core import Run

    out = tmp_path / "merged"
    code, stdout, err = cli(capsys, "export", "--merge", str(runs["mine"]), str(out))
    assert code == 0, err
    merged = Run.load(out)
    assert not merged.is_personalised
    assert "base:" not in (out / "config.yaml").read_text()
    assert (out / "model" / "model.safetensors").is_file()
    adapted = _pixels(Run.load(runs["mine"]).generate(8, seed=2))
    standalone = _pixels(merged.generate(8, seed=2))
    assert np.abs(adapted - standalone).max() < 1e-4
    assert np.abs(standalone - _pixels(Run.load(runs["base"]).generate(8, seed=2))).max() > 1e-2  # not the base
    # a second export into the same place is refused; the first stays whole
    code, _, err = cli(capsys, "export", "--merge", str(runs["mine"]), str(out))
    assert code == 2 and "already a run" in err
    assert Run.load(out).fingerprint == merged.fingerprint


def test_the_adapter_trains_at_lr_scale_times_the_generators_rate(runs, tmp_path):
    """``generator.adapter.lr_scale`` reaches the optimiser of a real run (the config's ``lr`` stays
    what full fine-tuning of the same config would use)."""
    from pytorch_lightning.callbacks import Callback

    from aigc_core import Pipeline

    seen = []

    class Rates(Callback):
        def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
            seen.append([group["lr"] for opt in trainer.optimizers for group in opt.param_groups])

    config = copy.deepcopy(runs["config"])
    config["generator"]["adapter"] = {"rank": 2, "targets": VAE_TARGETS, "lr_scale": 5}
    config["train"]["max_steps"] = 1
    config["output"]["dir"] = str(tmp_path / "scaled")
    Pipeline.from_config(config).fit(callbacks=[Rates()])
    assert seen == [[pytest.approx(0.15)]]  # 5 x the config's lr of 0.03


def test_full_fine_tuning_from_a_base_stores_a_whole_model(runs, tmp_path):
    from aigc_core import Pipeline, Run

    config = copy.deepcopy(runs["config"])
    config["generator"] = {"name": "vae", "base": str(runs["base"])}
    config["train"]["max_steps"] = 3
    config["output"]["dir"] = str(tmp_path / "full")
    Pipeline.from_config(config).run()
    run = Run.load(tmp_path / "full")
    assert not run.is_personalised and (tmp_path / "full" / "model" / "model.safetensors").is_file()
    assert run.manifest["base"]["fingerprint"] == Run.load(runs["base"]).fingerprint


def test_a_gan_adapts_with_the_base_discriminator(tmp_path):
    """dcgan: adapters on transposed convolutions, D taken from the base run's checkpoint."""
    from aigc_core import Pipeline, Run

    base = tmp_path / "gan"
    Pipeline.from_config(_config("gan", base, DIGITS, {"name": "dcgan", "size": "debug"}, 4,
                                 checkpoint_every_n_epochs=1)).run()
    generator = {"name": "dcgan", "base": str(base), "adapter": {"rank": 2, "targets": ["project.0", "body.0"]}}
    mine = tmp_path / "gan-mine"
    pipe = Pipeline.from_config(_config("gan-mine", mine, DIGITS, generator, 2))
    pipe.fit()
    state = Run.load(base).training_state()
    assert state is not None
    import torch

    from aigc_gan.training import DCGANTraining

    module = DCGANTraining(pipe.generator)
    module.adopt_base(Run.load(base))
    assert all(torch.equal(v, state[f"D.{k}"]) for k, v in module.D.state_dict().items())
    assert module.policy == ["translation", "cutout"]  # few images: augmentation on unless chosen
    assert Run.load(mine).is_personalised


@pytest.mark.parametrize("generator, key, words", [
    ({"name": "vae", "adapter": {"rank": 2}}, "generator.adapter", "set generator.base"),
    ({"name": "vae", "base": "BASE", "adapter": {"rank": 0}}, "generator.adapter.rank", "must be in [1, 4096]"),
    ({"name": "vae", "base": "BASE", "adapter": {"rank": 64, "targets": ["decoder.fc.0"]}}, "generator.adapter.rank",
     "larger than layer"),
    ({"name": "vae", "base": "BASE", "adapter": {"targets": ["decoder.fc0"]}}, "generator.adapter.targets",
     "did you mean"),
    ({"name": "vae", "base": "BASE", "adapter": {"targets": ["decoder"]}}, "generator.adapter.targets", "LoRA adapts"),
    ({"name": "vae", "base": "BASE", "adapter": {"targets": VAE_TARGETS, "lr_scale": 0}}, "generator.adapter.lr_scale",
     "must be in (0, 1000]"),
    ({"name": "vae", "base": "BASE", "adapter": {"targets": VAE_TARGETS, "lr_scale": "fast"}},
     "generator.adapter.lr_scale", "number"),
    ({"name": "dcgan", "base": "BASE"}, "generator.base", "same backend"),
    ({"name": "vae", "base": "./no/such/run"}, "generator.base", "no such run directory"),
    ({"name": "vae", "base": "MINE", "adapter": {"rank": 2}}, "generator.base", "export --merge"),
    ({"name": "vae", "base": "UNFINISHED"}, "generator.base", "unfinished run"),
])
def test_bad_personalisation_is_one_line_naming_the_key(runs, tmp_path, capsys, generator, key, words):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((runs["base"] / "config.yaml").read_text())
    manifest = json.loads((runs["base"] / "manifest.json").read_text())
    (unfinished / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "checkpoint"}))
    places = {"BASE": str(runs["base"]), "MINE": str(runs["mine"]), "UNFINISHED": str(unfinished)}
    generator = {k: places.get(v, v) if isinstance(v, str) else v for k, v in generator.items()}
    out = tmp_path / "run"
    path = write_yaml(tmp_path / "c.yaml", _config("bad", out, DIGITS, generator, 2))
    for command in ("check", "run"):
        code, _, err = cli(capsys, command, str(path))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and key in err and words in err, err
        assert not out.exists()


def test_data_the_base_cannot_make_is_refused_before_anything_is_written(runs, tmp_path, capsys):
    data = {**DIGITS, "image_size": 8}
    out = tmp_path / "run"
    config = _config("bad", out, data, {"name": "vae", "base": str(runs["base"]), "adapter": {"rank": 2,
                                                                                             "targets": VAE_TARGETS}}, 2)
    code, _, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 2 and "generator.base" in err and "shape" in err, err
    assert not out.exists()


def test_export_refuses_a_standalone_run_and_a_users_folder(runs, tmp_path, capsys):
    """Nothing to merge, or somewhere aigc may not write: one line, exit 2, nothing written or changed."""
    code, _, err = cli(capsys, "export", "--merge", str(runs["base"]), str(tmp_path / "out"))
    assert code == 2 and "not a personalised run" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "export", "--merge", str(runs["mine"]), str(mine))
    assert code == 2 and "not an aigc run" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"] and (mine / "keep.txt").read_text() == "mine"
