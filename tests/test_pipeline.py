"""A real (tiny) pipeline end to end: run directory, manifest, resume, generate, provenance."""

from __future__ import annotations

import json
from pathlib import Path


from aigc_core import Pipeline, sha256_file
from aigc_core.helpers.imaging import read_png_text
from aigc_testutil import cli, tiny_gan_config, write_yaml


def test_run_directory_contents(trained_run: Path):
    for rel in ["config.yaml", "manifest.json", "model/model.safetensors", "model/model.json",
                "checkpoints/last.ckpt", "logs/csv/metrics.csv", "loss.png", "outputs/grid.png",
                "samples/epoch_001.png"]:
        assert (trained_run / rel).is_file(), rel
    assert list((trained_run / "logs" / "tb").glob("events.out.tfevents.*")), "tensorboard log"
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["name"] == "tiny-gan" and manifest["seed"] == 3
    assert manifest["versions"]["plugins"]["aigc-gan"]
    assert manifest["versions"]["torch"].startswith("2.")
    # 256 items - 2 x 26 held out = 204 -> 7 batches of 32; Lightning counts both optimisers' steps
    assert manifest["training"]["global_step"] == 14
    assert {"fit_s", "generate_s", "total_s"} <= set(manifest["timings"])
    for entry in manifest["outputs"]:
        assert sha256_file(trained_run / entry["path"]) == entry["sha256"]
    singles = [e for e in manifest["outputs"] if e["path"].startswith("outputs/sample_")]
    assert len(singles) == 6
    assert not [p for p in trained_run.rglob("*.tmp")], "no temporary files left behind"


def test_png_provenance(trained_run: Path):
    text = read_png_text((trained_run / "outputs" / "sample_00002.png").read_bytes())
    provenance = json.loads(text["aigc"])
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert provenance["generator"] == "dcgan" and provenance["run"] == "tiny-gan"
    assert provenance["index"] == 2 and provenance["seed"] == 3
    assert len(provenance["checkpoint_sha256"]) == 64
    assert set(manifest["checkpoint"]["files"]) == {"model.safetensors", "model.json"}


def test_generate_same_seed_same_bytes(trained_run: Path, tmp_path, capsys):
    outs = []
    for name, seed in [("a", "5"), ("b", "5"), ("c", "6")]:
        code, out, _ = cli(capsys, "generate", str(trained_run), "-n", "4", "--seed", seed, "--out", str(tmp_path / name))
        assert code == 0 and out.strip() == str(tmp_path / name)
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.png"))})
    assert outs[0] == outs[1]
    assert set(outs[0]) == {"sample_00000.png", "sample_00001.png", "sample_00002.png", "sample_00003.png", "grid.png"}
    assert outs[0]["sample_00000.png"] != outs[2]["sample_00000.png"]


def test_samples_do_not_depend_on_batch(trained_run: Path):
    pipe = Pipeline.from_run_dir(trained_run)
    many = pipe.generate(5, seed=11, batch_size=4)
    few = pipe.generate(3, seed=11, batch_size=4)
    for a, b in zip(few.items, many.items):
        assert (a.data == b.data).all()


def test_generate_refuses_a_truncated_checkpoint(trained_run: Path, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    weights = copy / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, _, err = cli(capsys, "generate", str(copy), "-n", "2")
    assert code == 1
    assert f"{weights}: checkpoint is corrupt or truncated" in err
    assert not (copy / "generated").exists()
    code, _, err = cli(capsys, "generate", str(tmp_path), "-n", "2")
    assert code == 2 and "not a run directory" in err


def test_generate_rejects_unknown_option(trained_run: Path, capsys, tmp_path):
    code, _, err = cli(capsys, "generate", str(trained_run), "colour=red", "--out", str(tmp_path / "x"))
    assert code == 2 and "generate.colour: unknown key" in err
    code, _, err = cli(capsys, "generate", str(trained_run), "--stream", "--out", str(tmp_path / "x"))
    assert code == 2 and "does not stream" in err


def test_rerun_resumes_and_other_config_is_refused(tmp_path, capsys):
    config = tiny_gan_config(tmp_path / "run")
    cfg = write_yaml(tmp_path / "c.yaml", config)
    code, out, _ = cli(capsys, "run", str(cfg))
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / "run")
    first = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert first["resumed_from"] is None

    code, _, _ = cli(capsys, "run", str(cfg), "train.max_epochs=2")
    assert code == 0
    second = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert second["resumed_from"] == {"epoch": 1, "batch": 0, "step": first["global_step"],
                                      "checkpoint": "checkpoints/last.ckpt"}
    assert second["global_step"] == 2 * first["global_step"]

    code, _, err = cli(capsys, "run", str(cfg), "generator.size=small")
    assert code == 2 and "holds a run of another config (differs at generator.size)" in err
    assert "--restart" in err

    code, _, _ = cli(capsys, "run", str(cfg), "train.max_epochs=1", "--restart")
    assert code == 0
    third = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert third["resumed_from"] is None and third["global_step"] == first["global_step"]
