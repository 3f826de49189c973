"""The DDPM through the real CLI and server: a tiny run of configs/diffusion-digits.yaml, resume,
generation options, bad options, sharded generation and the HTTP API."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest

from aigc_testutil import cli

ROOT = Path(__file__).resolve().parents[3]
TINY = ["generator.size=debug", "data.image_size=8", "data.limit=96", "data.batch_size=32", "train.max_epochs=1",
        "train.progress_bar=false", "metrics=[]", "generate.num_samples=4", "generate.num_inference_steps=3",
        "generate.batch_size=4", "postprocess=[]",
        "generate.scheduler=dpm-solver"]  # not the generator's default: the server must show the run's own


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddpm") / "run"
    code = cli_plain("run", ROOT / "configs/diffusion-digits.yaml", *TINY, f"output.dir={run_dir}")
    assert code == 0
    return run_dir


def cli_plain(*argv) -> int:
    from aigc_core.cli import main

    return main([str(a) for a in argv])


def pngs(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.png"))}


def test_run_writes_samples_and_a_safetensors_model(ddpm_run):
    manifest = json.loads((ddpm_run / "manifest.json").read_text())
    assert manifest["generator"] == "ddpm"
    assert len(list((ddpm_run / "outputs").glob("sample_*.png"))) == 4
    assert (ddpm_run / "model" / "model.safetensors").is_file()
    assert not [p for p in (ddpm_run / "model").iterdir() if p.suffix in (".pt", ".pkl", ".ckpt")]


def test_generate_options_reach_the_sampler_and_repeat_exactly(ddpm_run, tmp_path, capsys):
    from aigc_core.helpers.imaging import read_png_text

    runs = {}
    for name, opts in {"a": ["scheduler=ddim"], "b": ["scheduler=ddim"], "steps": ["scheduler=ddim", "num_inference_steps=4"],
                       "dpm": ["scheduler=dpm-solver"]}.items():
        code, _, err = cli(capsys, "generate", str(ddpm_run), *opts, "batch_size=4", "-n", "3", "--seed", "1",
                           "--out", str(tmp_path / name))
        assert code == 0, err
        runs[name] = pngs(tmp_path / name)
    assert len(runs["a"]) == 3 and runs["a"] == runs["b"]
    meta = {name: json.loads(read_png_text(files["sample_00000.png"])["aigc"]) for name, files in runs.items()}
    assert (meta["a"]["scheduler"], meta["a"]["num_inference_steps"]) == ("ddim", 3)  # the run's step count
    assert (meta["steps"]["scheduler"], meta["steps"]["num_inference_steps"]) == ("ddim", 4)
    assert meta["dpm"]["scheduler"] == "dpm-solver"


@pytest.mark.parametrize("option,key", [
    ("num_inference_steps=0", "generate.num_inference_steps"),
    ("scheduler=NoSuchScheduler", "generate.scheduler"),
    ("guidance_scale=-1", "generate.guidance_scale"),
])
def test_bad_options_are_one_line_errors_with_exit_2(ddpm_run, tmp_path, capsys, option, key):
    out = tmp_path / "bad"
    code, _, err = cli(capsys, "generate", str(ddpm_run), option, "-n", "2", "--out", str(out))
    assert code == 2
    assert err.strip().count("\n") == 0 and key in err and "Traceback" not in err
    assert not out.exists()


def test_bad_image_size_is_a_config_error(tmp_path, capsys):
    code, _, err = cli(capsys, "run", str(ROOT / "configs/diffusion-digits.yaml"), *TINY, "data.image_size=10",
                       "generator.size=small", f"output.dir={tmp_path / 'run'}")
    assert code == 2 and err.strip().count("\n") == 0
    assert "data.image_size: ddpm size 'small' with patch 2 needs image sides divisible by 8, got 10x10" in err


def test_rerun_with_more_epochs_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [str(ROOT / "configs/diffusion-digits.yaml"), *TINY, "data.limit=64", f"output.dir={run_dir}"]
    code, _, err = cli(capsys, "run", *args)
    assert code == 0, err
    first = json.loads((run_dir / "manifest.json").read_text())["training"]
    code, _, err = cli(capsys, "run", *args, "train.max_epochs=2")
    assert code == 0, err
    second = json.loads((run_dir / "manifest.json").read_text())["training"]
    assert first["resumed_from"] is None
    assert second["resumed_from"] == {"epoch": 1, "batch": 0, "step": first["global_step"],
                                      "checkpoint": "checkpoints/last.ckpt"}
    assert second["global_step"] == 2 * first["global_step"]


def test_shards_hold_the_images_plain_generation_makes(ddpm_run, tmp_path, capsys):
    """Shards of 2 with batches of 2 (each sample's batch and start change with its shard) hold the
    images one plain call makes. That two processes write what one writes is the core's promise,
    tested once with a dcgan run (tests/test_distributed.py); sample i alone equals sample i in a
    batch for every scheduler is test_ddpm.py's."""
    common = ["-n", "5", "num_inference_steps=2", "batch_size=2"]
    code, _, err = cli(capsys, "generate", str(ddpm_run), *common, "--out", str(tmp_path / "plain"))
    assert code == 0, err
    code, _, err = cli(capsys, "generate", str(ddpm_run), *common, "--shard-size", "2", "--devices", "1",
                       "--out", str(tmp_path / "sharded"))
    assert code == 0, err
    plain, sharded = pngs(tmp_path / "plain"), pngs(tmp_path / "sharded")
    assert len(sharded) == 5 and {Path(name).name: data for name, data in sharded.items()} == plain


def test_server_exposes_the_step_count_and_serves_the_pipelines_images(ddpm_run):
    import httpx
    from PIL import Image

    from aigc_core import Pipeline
    from aigc_core.helpers.imaging import to_uint8_hwc
    from aigc_core.server import ServerSettings, create_app
    from aigc_core.server.live import LiveServer

    with LiveServer(create_app([f"digits-ddpm={ddpm_run}"], ServerSettings())) as live, \
            httpx.Client(base_url=live.url, timeout=60) as client:
        model = client.get("/v1/models/digits-ddpm").json()
        opts = model["options"]["properties"]
        assert opts["num_inference_steps"]["type"] == "integer" and opts["num_inference_steps"]["default"] == 3
        assert opts["scheduler"]["default"] == "dpm-solver" and "guidance_scale" in opts
        body = {"n": 2, "seed": 4, "options": {"num_inference_steps": 2, "batch_size": 2}}
        items = client.post("/v1/models/digits-ddpm/generate", json=body).json()["items"]
        bad = client.post("/v1/models/digits-ddpm/generate", json={"n": 1, "options": {"num_inference_steps": 0}})
    assert bad.status_code == 422 and "options.num_inference_steps" in bad.text
    expected = Pipeline.from_run_dir(ddpm_run).generate(2, seed=4, num_inference_steps=2, batch_size=2)
    for item, ref in zip(items, expected.items):
        with Image.open(io.BytesIO(base64.b64decode(item["data_base64"]))) as img:
            np.testing.assert_array_equal(np.asarray(img), to_uint8_hwc(ref.data))
        assert item["meta"]["num_inference_steps"] == 2


def test_metrics_sample_with_the_runs_generate_options(ddpm_run, tmp_path, monkeypatch):
    """A score must describe what the config generates: frechet's samples use its step count
    and guidance, not the generator's defaults (25 steps, guidance 2)."""
    from aigc_core import Content, Pipeline

    monkeypatch.setenv("AIGC_CACHE_DIR", str(tmp_path / "cache"))
    pipe = Pipeline.from_run_dir(ddpm_run, ["generate.num_inference_steps=2", "generate.guidance_scale=0",
                                            "metrics=[{name: frechet, num_samples: 10, classifier_epochs: 0}]"])
    seen = []
    real_generate = pipe.generator.generate

    def spy(n, seed, options, **extra):
        seen.append(options)
        return real_generate(n, seed, options, **extra)

    monkeypatch.setattr(pipe.generator, "generate", spy)
    scores = pipe.score(Content("image", []))
    assert scores["frechet"]["fd_generated"] > 0
    assert [(o.num_inference_steps, o.guidance_scale) for o in seen] == [(2, 0.0)]
