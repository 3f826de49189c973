"""The VAE through the real CLI: a tiny run, every generation mode, and the bad inputs.

One tiny training run (debug size, 200 digits, one epoch) is shared by the module's tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aigc_core import DataSource, get_registry
from aigc_core import Params
from aigc_core.cli import main
from aigc_core.helpers.imaging import png_bytes, read_png_text
from aigc_core.plugins.registry import PluginInfo

ROOT = Path(__file__).resolve().parents[3]
TINY = ["generator.size=debug", "data.image_size=8", "data.limit=200", "train.max_epochs=1",
        "train.progress_bar=false", "train.sample_every_n_epochs=0", "metrics=[{name: vae-likelihood, k: 4}]",
        "generate.num_samples=6"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vae") / "run"
    code = main(["run", str(ROOT / "configs/vae-digits.yaml"), *TINY, f"output.dir={run_dir}"])
    assert code == 0
    return run_dir


def test_run_writes_likelihood_metrics_and_pngs(vae_run):
    manifest = json.loads((vae_run / "manifest.json").read_text())
    metrics = manifest["metrics"]["vae-likelihood"]
    assert metrics["k"] == 4 and metrics["num_images"] == 20  # the 10% test split of 200 digits
    assert metrics["nll_nats"] <= -metrics["elbo_nats"] + 1.0  # the IS bound is no looser than the ELBO
    assert metrics["recon_mse"] > 0 and np.isfinite(metrics["nll_stderr"])
    assert len(list((vae_run / "outputs").glob("sample_*.png"))) == 6
    assert (vae_run / "model" / "model.json").is_file()
    assert json.loads((vae_run / "model" / "model.json").read_text())["generator"] == "vae"


@pytest.mark.parametrize("options,count,shape", [
    (["mode=samples"], 3, (8, 8)),
    (["mode=reconstructions"], 3, (8, 16)),  # original | reconstruction, side by side
    (["mode=interpolation", "steps=4"], 3 * 4, (8, 8)),
    (["mode=traversal", "dim=2", "steps=5"], 3 * 5, (8, 8)),
])
def test_generate_modes_write_pngs_with_provenance(vae_run, tmp_path, capsys, options, count, shape):
    from PIL import Image

    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "generate", vae_run, *options, "-n", "3", "--seed", "5", "--out", out)
    assert code == 0 and stdout.strip() == str(out)
    files = sorted(out.glob("sample_*.png"))
    assert len(files) == count
    with Image.open(files[0]) as img:
        assert img.size[::-1] == shape
    if count > 3:  # rows x steps frames, and the mode's own grid of them: 3 rows of 10-pixel cells
        with Image.open(out / "grid.png") as img:
            assert img.size == ((count // 3) * 10 + 2, 3 * 10 + 2)
    meta = json.loads(read_png_text(files[0].read_bytes())["aigc"])
    assert meta["generator"] == "vae" and meta["seed"] == 5 and len(meta["checkpoint_sha256"]) == 64
    again = tmp_path / "again"
    assert run_cli(capsys, "generate", vae_run, *options, "-n", "3", "--seed", "5", "--out", again)[0] == 0
    assert [f.read_bytes() for f in files] == [(again / f.name).read_bytes() for f in files]


def test_interpolation_between_two_image_files(vae_run, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(np.zeros((1, 8, 8), np.float32)))
    b.write_bytes(png_bytes(np.ones((1, 8, 8), np.float32)))
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, "generate", vae_run, "mode=interpolation", f"a={a}", f"b={b}", "steps=6",
                         "--out", out)
    assert code == 0 and len(list(out.glob("sample_*.png"))) == 6


# -- bad input -----------------------------------------------------------------------------------


def test_interpolation_between_images_of_another_shape(vae_run, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "rgb.png"
    a.write_bytes(png_bytes(np.zeros((1, 8, 8), np.float32)))
    b.write_bytes(png_bytes(np.zeros((3, 16, 16), np.float32)))
    code, _, err = run_cli(capsys, "generate", vae_run, "mode=interpolation", f"a={a}", f"b={b}",
                           "--out", tmp_path / "out")
    assert code == 2
    assert err.strip() == (f"aigc: error: generate.b: {b}: image of shape 3x16x16, but the model takes 1x8x8 "
                           "(C x H x W)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override,key", [("generator.latent_dim=0", "generator.latent_dim"),
                                          ("generator.beta=-1", "generator.beta")])
def test_bad_generator_parameters(capsys, override, key):
    code, _, err = run_cli(capsys, "check", ROOT / "configs/vae-digits.yaml", override)
    assert code == 2
    assert err.startswith(f"aigc: error: {key}: must be") and err.count("\n") == 1


class _TextParams(Params):
    batch_size: int = 8


class _Lines(DataSource):
    modality = "text"
    Params = _TextParams


def test_data_source_of_another_modality(tmp_path, capsys):
    config = tmp_path / "text.yaml"
    config.write_text("name: t\ndata: {source: vae-test-lines}\ngenerator: {name: vae, size: debug}\n")
    registry = get_registry()
    plugin = PluginInfo("vae-test", "0", "aigc-vae-tests")
    registry.register_function("data_source", plugin)("vae-test-lines", _Lines, modality="text")
    try:
        code, _, err = run_cli(capsys, "check", config)
    finally:
        registry._components["data_source"].pop("vae-test-lines", None)
    assert code == 2
    assert err.strip() == ("aigc: error: data.source: data source 'vae-test-lines' gives text but generator "
                           "'vae' makes image")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gan") / "run"
    code = main(["run", str(ROOT / "configs/quickstart.yaml"), "generator.size=debug", "data.image_size=8",
                 "data.limit=64", "train.max_epochs=1", "train.progress_bar=false", "train.sample_every_n_epochs=0",
                 "metrics=[]", "postprocess=[]", "generate.num_samples=2", f"output.dir={run_dir}"])
    assert code == 0
    return run_dir


def test_vae_generate_options_on_a_gan_run(gan_run, capsys):
    code, _, err = run_cli(capsys, "generate", gan_run, "mode=reconstructions")
    assert code == 2
    assert err.startswith("aigc: error: generate.mode: unknown key") and err.count("\n") == 1


def test_vae_run_directory_holding_a_gan_checkpoint(vae_run, gan_run, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(vae_run / "config.yaml", mixed / "config.yaml")
    shutil.copytree(gan_run / "model", mixed / "model")
    code, _, err = run_cli(capsys, "generate", mixed, "--out", tmp_path / "out")
    assert code == 1 and "refusing to load weights that cannot be verified" in err  # no manifest: nothing vouches
    gan_manifest = json.loads((gan_run / "manifest.json").read_text())
    (mixed / "manifest.json").write_text(json.dumps({"checkpoint": gan_manifest["checkpoint"]}))
    code, _, err = run_cli(capsys, "generate", mixed, "--out", tmp_path / "out")
    assert code == 1
    assert err.strip() == f"aigc: error: {mixed / 'model' / 'model.json'}: not a vae checkpoint (written by another generator)"
    shutil.copy(gan_run / "manifest.json", mixed / "manifest.json")  # the GAN's own record: the core refuses too
    code, _, err = run_cli(capsys, "generate", mixed)
    assert code == 1 and "holds a 'dcgan' checkpoint, not 'vae'" in err
    assert not (tmp_path / "out").exists()
