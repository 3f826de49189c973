"""`aigc check` finds what `aigc run` would fail on, before anything is read or trained; paths in a
config mean the same files from any working directory."""

from __future__ import annotations


import pytest

from aigc_testutil import cli, tiny_gan_config, write_yaml

UNSET = "AIGC_TEST_SURELY_UNSET_DIR"


def image_folder(root):
    """Four 8x8 PNGs in two class folders."""
    import numpy as np
    from PIL import Image

    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), 60 * i + 40 * (label == "b"), np.uint8)).save(root / label / f"{i}.png")
    return root


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aigc: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("path", [f"${UNSET}/images", f"${{oc.env:{UNSET}}}/images"])
def test_an_unset_variable_is_a_config_error_naming_the_key(tmp_path, capsys, monkeypatch, path):
    monkeypatch.delenv(UNSET, raising=False)
    config = tiny_gan_config(tmp_path / "run")
    config["data"] = {"source": "image-folder", "path": path, "image_size": 8}
    cfg = write_yaml(tmp_path / "c.yaml", config)
    for command in ("check", "run"):
        code, _, err = cli(capsys, command, str(cfg))
        line = one_error(err)
        assert code == 2 and line.startswith("aigc: error: data.path: ") and UNSET in line and "not set" in line
    assert not (tmp_path / "run").exists()


def test_relative_paths_resolve_from_the_config_files_folder(tmp_path, capsys, monkeypatch):
    from aigc_core import Pipeline

    project = tmp_path / "project"
    image_folder(project / "images")
    config = tiny_gan_config(tmp_path / "run")
    config["data"] = {"source": "image-folder", "path": "../images", "image_size": 8}
    (project / "configs").mkdir()
    cfg = write_yaml(project / "configs" / "c.yaml", config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = cli(capsys, "check", str(cfg))
    assert code == 0 and out.startswith("ok: "), err
    assert Pipeline.from_config(cfg).data.params.path == str(project / "images")
    # typed on the command line, a relative path means the working directory, as in any shell
    image_folder(elsewhere / "mine")
    pipe = Pipeline.from_config(cfg, ["data.path=mine"])
    assert pipe.data.params.path == str(elsewhere / "mine") and pipe.written["data"]["path"] == str(elsewhere / "mine")
    code, _, err = cli(capsys, "check", str(cfg), "data.path=../images")  # ../images from elsewhere: absent
    assert code == 2 and one_error(err) == f"aigc: error: data.path: {tmp_path / 'images'}: no such directory"
    # so does a variable's value: AIGC_DATA_DIR=../shared/data is typed in a shell
    monkeypatch.setenv("AIGC_TEST_PROJECT", "mine")
    pipe = Pipeline.from_config(write_yaml(cfg, {**config, "data": {**config["data"], "path": "$AIGC_TEST_PROJECT"}}))
    assert pipe.data.params.path == str(elsewhere / "mine")
    # the run records where its relative paths came from, for a later `aigc generate` from anywhere
    pipe = Pipeline.from_config(write_yaml(cfg, config))
    pipe.prepare_run_dir()
    assert pipe.manifest()["config_dir"] == str(project / "configs")


def test_mnist_files_are_looked_for_by_check(tmp_path, capsys):
    config = tiny_gan_config(tmp_path / "run")
    config["data"] = {"source": "mnist", "root": str(tmp_path), "image_size": 8}
    code, _, err = cli(capsys, "check", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 2 and one_error(err).startswith(f"aigc: error: data.root: {tmp_path}: MNIST files not found")


def test_a_run_whose_plugin_is_gone_names_the_distribution_to_reinstall(trained_run, monkeypatch):
    from aigc_core import ConfigError, Pipeline
    from aigc_core.plugins import load_plugins

    manifest = Pipeline.from_run_dir(trained_run).manifest()
    assert manifest["versions"]["components"]["generator"]["distribution"] == "aigc-gan"
    monkeypatch.setenv("AIGC_LOAD_PLUGINS", "aigc-vae")  # aigc-gan is not loaded: as if uninstalled
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_run_dir(trained_run, registry=load_plugins())
    message = str(caught.value)
    assert message.startswith("generator.name: unknown generator 'dcgan'")
    assert "made with aigc-gan" in message and "aigc plugins install aigc-gan" in message
