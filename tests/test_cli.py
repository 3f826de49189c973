"""The CLI as a user meets it: exit codes, one-line errors, nothing half-written, no torch at start-up."""

from __future__ import annotations

import json
import sys

import pytest

from aigc_testutil import cli, run_aigc, tiny_gan_config, write_yaml

#: pydantic too: its import alone is about a third of `aigc plugins list` (typed parameters load lazily)
HEAVY = ("torch", "pytorch_lightning", "lightning", "transformers", "torchaudio", "pydantic",
         "rich")  # the progress display imports rich when a phase is first shown, not at start-up


@pytest.mark.parametrize("args", [["--help"], ["plugins", "list"], ["plugins", "list", "--json", "--all"]])
def test_startup_imports_no_heavy_library(args):
    code = (
        "import sys\n"
        "from aigc_core.cli import main\n"
        "try:\n"
        f"    rc = main({args!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY [] 0" in out.stdout, out.stdout + out.stderr


def test_plugins_list_json_shape(capsys):
    code, out, _ = cli(capsys, "plugins", "list", "--json", "--all")
    assert code == 0
    plugins = json.loads(out)
    by_name = {p["name"]: p for p in plugins}
    assert {"builtin", "gan"} <= set(by_name)
    gan = by_name["gan"]
    assert gan["version"] and gan["distribution"] == "aigc-gan"
    assert {"kind": "generator", "name": "dcgan", "modality": "image"}.items() <= gan["components"][0].items()
    code, out, _ = cli(capsys, "plugins", "list", "--json")
    assert "builtin" not in {p["name"] for p in json.loads(out)}


def test_plugins_list_json_matches_its_documented_shape(capsys):
    """docs/writing-plugins.md documents the JSON; every key it shows is there, and no other, and
    every kind is one of the stable identifiers it lists."""
    import re

    from aigc_testutil import ROOT

    doc = (ROOT / "docs" / "writing-plugins.md").read_text()
    section = doc.split("## Machine-readable output: `aigc plugins list --json`")[1]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    kinds = ["data-source", "generator", "post-processor", "metric", "exporter"]
    assert "`, `".join(kinds) in section
    code, out, _ = cli(capsys, "plugins", "list", "--json", "--all")
    plugins = json.loads(out)
    assert all(set(p) == set(example[0]) for p in plugins)
    components = [c for p in plugins for c in p["components"]]
    assert all(set(c) == set(example[0]["components"][0]) for c in components)
    assert {c["kind"] for c in components} == set(kinds)  # the built-in plugin alone has all five
    code, out, _ = cli(capsys, "plugins", "info", "dcgan", "--json")
    details = json.loads(out)["components"][0]
    assert details["params"]["properties"]["latent_dim"]["description"]
    assert details["generate_options"]["properties"]["truncation"]["exclusiveMinimum"] == 0


def test_plugins_info_shows_parameters(capsys):
    code, out, _ = cli(capsys, "plugins", "info", "dcgan")
    assert code == 0
    assert "latent_dim" in out and "generate options" in out and "label" in out
    code, _, err = cli(capsys, "plugins", "info", "no-such-thing")
    assert code == 2 and "no plugin or component named 'no-such-thing'" in err


def test_check_ok_and_errors_exit_2_with_one_line(tmp_path, capsys):
    cfg = write_yaml(tmp_path / "ok.yaml", tiny_gan_config(tmp_path / "run"))
    code, out, _ = cli(capsys, "check", str(cfg))
    assert code == 0 and out.startswith("ok: tiny-gan (image)")
    for override, needle in [
        ("generator.name=dcgun", "generator.name: unknown generator 'dcgun'; did you mean 'dcgan'?"),
        ("generator.latent_dim=abc", "generator.latent_dim: expected an integer or null, got 'abc'"),
        ("generator.latnt_dim=3", "generator.latnt_dim: unknown key; did you mean 'latent_dim'?"),
        ("postprocess.0.name=redact-pii", "post-processor 'redact-pii' accepts text, not image"),
    ]:
        code, _, err = cli(capsys, "check", str(cfg), override)
        assert code == 2, override
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "check must not create the run directory"


def test_usage_errors_exit_2(capsys, tmp_path):
    code, _, err = cli(capsys, "check", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml: no such config file" in err
    code, _, err = cli(capsys, "frobnicate")
    assert code == 2 and err.count("\n") == 1


def test_missing_data_directory_names_it(tmp_path, capsys):
    config = tiny_gan_config(tmp_path / "run")
    config["data"] = {"source": "image-folder", "path": str(tmp_path / "nowhere"), "image_size": 8}
    cfg = write_yaml(tmp_path / "c.yaml", config)
    for command in ("check", "run"):  # a folder the config names is checked before anything runs: exit 2
        code, _, err = cli(capsys, command, str(cfg))
        assert code == 2
        assert f"data.path: {tmp_path / 'nowhere'}: no such directory" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    config["data"]["path"] = str(empty)
    code, _, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 1 and "no images found" in err


def test_unwritable_run_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = write_yaml(tmp_path / "c.yaml", tiny_gan_config(blocker / "run"))
    code, _, err = cli(capsys, "run", str(cfg))
    assert code == 1 and "run directory is not writable" in err and str(blocker / "run") in err
    assert blocker.read_text() == "not a directory"


def test_debug_shows_the_traceback(tmp_path):
    result = run_aigc("--debug", "check", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0 and "Traceback" in result.stderr
    result = run_aigc("check", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_python_dash_m_is_the_same_cli():
    result = run_aigc("--version")
    assert result.returncode == 0 and result.stdout.startswith("aigc ")


def test_key_values_may_follow_flags(trained_run, tmp_path, capsys):
    code, out, _ = cli(capsys, "generate", str(trained_run), "-n", "2", "--out", str(tmp_path / "o"), "use_ema=false")
    assert code == 0 and sorted(p.name for p in (tmp_path / "o").glob("sample_*.png")) == ["sample_00000.png", "sample_00001.png"]
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "2", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus" in err
    code, _, err = cli(capsys, "plugins", "list", "x=1")
    assert code == 2 and "unrecognized arguments: x=1" in err
