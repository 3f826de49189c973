"""``stylegan`` through the pipeline: training with ADA (p logged, resumed), ``aigc generate`` with
mixing, walks and projection, the server taking the projection image as content, and bad options
as one line, exit 2, nothing written."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from aigc_core import Pipeline
from aigc_core.testing import check_mid_epoch_resume


def config(out: Path, **generator) -> dict:
    return {
        "name": "stylegan-tiny", "seed": 0,
        "data": {"source": "sklearn-digits", "image_size": 16, "batch_size": 32, "limit": 240},
        "generator": {"name": "stylegan", "size": "debug", "conditional": True, **generator},
        "train": {"max_steps": 16, "max_epochs": -1, "accelerator": "cpu", "progress_bar": False,
                  "sample_every_n_epochs": 0, "limit_val_batches": 0, "log_every_n_steps": 1},
        "generate": {"num_samples": 4},
        "postprocess": [{"name": "image-grid", "nrow": 4}],
        "metrics": [],
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stylegan") / "run"
    Pipeline.from_config(config(out, ada_kimg=0.5, augment_p=0.5, ada_interval=1)).fit()
    return out


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcgan") / "run"
    cfg = config(out)
    cfg["generator"] = {"name": "dcgan", "size": "debug"}
    cfg["train"]["max_steps"] = 2
    Pipeline.from_config(cfg).fit()
    return out


def logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    rows = []
    for path in sorted((run_dir / "logs").rglob("metrics.csv")):
        with open(path, newline="") as f:
            rows += [(int(r["step"]), float(r[key])) for r in csv.DictReader(f) if r.get(key) not in (None, "")]
    return rows


def cli(*args):
    from aigc_core.cli import main

    return main(list(args))


def test_training_logs_the_augmentation_probability_every_step(run):
    p = logged(run, "ada_p")
    r_t = dict(logged(run, "ada_r_t"))
    assert len(p) >= 8 and len(r_t) >= 8, (p, r_t)
    # steered: after each step p moved up when r_t was above the target (0.6), down when below
    for (step, before), (_, after) in zip(p, p[1:]):
        if 0 < before < 1 and step + 1 in r_t:
            assert (after > before) == (r_t[step + 1] > 0.6), (step, before, after, r_t[step + 1])


def test_a_resumed_run_continues_with_the_p_it_had(tmp_path):
    """Killed inside an epoch and rerun, it ends exactly as the uninterrupted run: same weights,
    same optimiser states, the same p (a buffer of the training module, so in the checkpoint)."""
    # lr_d pinned to the value this was written with: at the default 0.02 p stood at its starting 0.5
    # again at the kill step, which leaves nothing to check
    cfg = config(tmp_path, ada_kimg=0.5, augment_p=0.5, ada_interval=1, lr_d=0.0025)
    cfg["data"].update(image_size=8, batch_size=16, limit=120)
    cfg["train"] = {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                    "log_every_n_steps": 1, "limit_val_batches": 0}
    # 96 training images: 6 iterations (12 optimiser steps) per epoch; checkpoints every 4 steps
    resumed = check_mid_epoch_resume(cfg, tmp_path, kill_at_step=18, every_n_steps=4)
    assert resumed["epoch"] == 1 and resumed["batch"] == 2
    import torch

    state = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert 0 < float(state["ada.p"]) != 0.5, "the test means something only if p had moved from where it starts"
    before, after = logged(tmp_path / "reference", "ada_p"), logged(tmp_path / "killed", "ada_p")
    assert after[-1] == before[-1]


def test_generate_writes_mixes_walks_with_animations_and_projections(run, tmp_path):
    from PIL import Image

    assert cli("generate", str(run), "-n", "3", "--seed", "2", "mix=9", "mix_layer=2", "--out", str(tmp_path / "mix")) == 0
    written = sorted(p.name for p in (tmp_path / "mix").iterdir() if p.suffix == ".png")
    assert written == ["grid.png", *(f"sample_{i:05d}.png" for i in range(3))]
    assert cli("generate", str(run), "-n", "2", "interpolate=5", "frames=4", "--out", str(tmp_path / "walk")) == 0
    names = sorted(p.name for p in (tmp_path / "walk").iterdir())
    assert "walk_000.gif" in names and "walk_001.gif" in names and "grid.png" in names
    with Image.open(tmp_path / "walk" / "walk_001.gif") as gif:
        assert gif.n_frames == 4
    digit = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 255).astype(np.uint8)).save(digit)
    assert cli("generate", str(run), "-n", "3", f"project={digit}", "project_steps=5",
               "--out", str(tmp_path / "proj")) == 0
    sample = tmp_path / "proj" / "sample_00000.png"
    from aigc_core.helpers.imaging import read_png_text

    meta = json.loads(read_png_text(sample.read_bytes())["aigc"])
    assert meta["projection"] == "reconstruction" and meta["note"] == "resized from 20x20 to 16x16"
    assert meta["projected"] == str(digit)


@pytest.mark.parametrize("options, message", [
    (["truncation=0"], "generate.truncation: must be in (0, 1]"),
    (["truncation=1.5"], "generate.truncation: must be in (0, 1]"),
    (["mix=3", "mix_layer=6"], "generate.mix_layer: must be in [1, 5]: this 16x16 generator has depth 6, got 6"),
    (["mix_layer=2"], "generate.mix_layer: needs mix (the second seed)"),
    (["mix=3", "interpolate=4"], "generate.interpolate: choose one of mix, interpolate and project (got mix too)"),
    (["project=NOTES"], "generate.project: NOTES: not a readable image"),
    (["project=MISSING"], "generate.project: MISSING: no such file"),
])
def test_bad_options_are_one_line_exit_2_and_nothing_written(run, tmp_path, capfd, options, message):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    options = [o.replace("NOTES", str(notes)).replace("MISSING", str(tmp_path / "missing.png")) for o in options]
    message = message.replace("NOTES", str(notes)).replace("MISSING", str(tmp_path / "missing.png"))
    out = tmp_path / "out"
    assert cli("generate", str(run), "-n", "2", *options, "--out", str(out)) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"aigc: error: {message}"] or err[-1].endswith(message), err
    assert len(err) == 1, err
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


@pytest.mark.parametrize("option", ["mix=3", "interpolate=2", "truncation=0.5"])
def test_options_a_dcgan_does_not_have_are_named(dcgan_run, tmp_path, capfd, option):
    out = tmp_path / "out"
    expected = {"mix=3": "mix", "interpolate=2": "interpolate", "truncation=0.5": None}[option]
    code = cli("generate", str(dcgan_run), "-n", "2", option, "--out", str(out))
    if expected is None:  # the DCGAN has truncation too
        assert code == 0
        return
    assert code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"generate.{expected}: unknown key" in err[0], err
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_the_server_takes_the_projection_image_as_content_and_never_a_path(run, tmp_path):
    from fastapi.testclient import TestClient
    from PIL import Image

    from aigc_core.contract.fileoptions import REFUSAL
    from aigc_core.server import ServerSettings, create_app

    picture = tmp_path / "digit.png"
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(picture)
    buf = io.BytesIO()
    Image.open(picture).save(buf, format="PNG")
    content = base64.b64encode(buf.getvalue()).decode()
    with TestClient(create_app([run], ServerSettings(batch_wait_ms=0)), base_url="http://localhost") as client:
        name = client.get("/v1/models").json()["models"][0]["name"]
        ok = client.post(f"/v1/models/{name}/generate",
                         json={"n": 2, "seed": 0, "options": {"project": content, "project_steps": 3}})
        assert ok.status_code == 200, ok.text
        items = ok.json()["items"]
        assert [i["meta"].get("projection") for i in items] == ["reconstruction", "variation", None]
        assert items[0]["meta"]["projected"].startswith("sha256:")  # a hash, never a path
        refused = client.post(f"/v1/models/{name}/generate",
                              json={"n": 1, "seed": 0, "options": {"project": str(picture)}})
        assert refused.status_code == 422 and refused.json()["error"] == f"options.project: {REFUSAL}"
        walk = client.post(f"/v1/models/{name}/generate",
                           json={"n": 1, "seed": 0, "options": {"interpolate": 3, "frames": 3}})
        assert [i["meta"].get("frame") for i in walk.json()["items"]] == [0, 1, 2, None]
