"""``aigc plugins new``: every kind and modality renders a plugin that passes the contract, and
straight after ``pip install -e`` (in a throwaway venv) it is listed and its own tests pass."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from aigc_core.plugins.scaffold import KINDS, MODALITIES, create, names_for

ALL = [(k, m) for k in KINDS for m in MODALITIES]


def aigc(*args: str, python: str = sys.executable, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return subprocess.run([python, "-m", "aigc_core", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("name", ["bad-", "bad name", "aigc_ü", "x..", ""])
def test_invalid_distribution_name_is_refused(tmp_path, name):
    proc = aigc("plugins", "new", name, "--dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "not a valid distribution name" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_name_that_is_no_python_package_is_refused():
    from aigc_core.contract.errors import UsageError

    with pytest.raises(UsageError, match="not a Python identifier"):
        names_for("3d-shapes")


def test_non_empty_target_directory_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    proc = aigc("plugins", "new", "aigc-taken", "--dir", str(target))
    assert proc.returncode == 2
    assert "exists and is not empty" in proc.stderr
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging folder left behind


def test_names_are_derived_consistently():
    assert names_for("aigc-Sparkle_Dust") == {"dist": "aigc-sparkle-dust", "package": "aigc_sparkle_dust",
                                              "plugin": "sparkle-dust", "component": "sparkle-dust",
                                              "Class": "SparkleDust"}


@pytest.mark.parametrize("kind, modality", ALL)
def test_rendered_package_is_complete(tmp_path, kind, modality):
    target = create(f"aigc-r-{modality}", kind=kind, modality=modality, directory=tmp_path / "p")
    pyproject = tomllib.loads((target / "pyproject.toml").read_text())
    eps = pyproject["project"]["entry-points"]
    assert eps["aigc"] == {f"r-{modality}": f"aigc_r_{modality}.plugin"}
    assert eps["aigc.api"] == {f"r-{modality}": "aigc_core.plugin_api:v4"}
    assert not any(d.startswith("torch") for d in pyproject["project"]["dependencies"])
    for path in target.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
        assert "{{" not in path.read_text()
    assert (target / "README.md").read_text().startswith("# aigc-r-")
    assert (target / "tests" / "test_contract.py").is_file()


@pytest.mark.parametrize("kind, modality", [c for c in ALL if c not in
                                            [("generator", "image"), ("post-processor", "text"), ("data-source", "audio")]])
def test_rendered_component_passes_the_contract(tmp_path, monkeypatch, kind, modality):
    """The combinations the install test below does not cover, checked in this process."""
    from aigc_core import testing

    name = f"aigc-c-{kind}-{modality}"
    target = create(name, kind=kind, modality=modality, directory=tmp_path / "p")
    monkeypatch.syspath_prepend(str(target))
    names = names_for(name)
    plugin = importlib.import_module(f"{names['package']}.plugin")
    [entry] = testing.check_registrations(plugin)
    cls = entry["class"]
    if kind == "generator":
        testing.GeneratorContract(cls, testing.tiny_source(modality), workdir=tmp_path / "w", modality=modality).run()
    elif kind == "post-processor":
        testing.PostProcessorContract(cls, modality).run()
    else:
        testing.DataSourceContract(cls, params={"count": 32, "batch_size": 8}).run()


def make_venv(root: Path) -> Path:
    """A throwaway venv that sees the project's packages (through a .pth) but installs into itself."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(site, "aigc_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def test_new_plugins_install_list_and_pass_their_tests(tmp_path):
    python = str(make_venv(tmp_path / "venv"))
    made = {"aigc-e2e-gen": ("generator", "image"), "aigc-e2e-post": ("post-processor", "text"),
            "aigc-e2e-src": ("data-source", "audio")}
    dirs = []
    for name, (kind, modality) in made.items():
        proc = aigc("plugins", "new", name, "--kind", kind, "--modality", modality, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        dirs.append(tmp_path / name)

    editable = [arg for d in dirs for arg in ("-e", str(d))]
    proc = aigc("plugins", "install", "--no-build-isolation", *editable, python=python)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "aigc-e2e-gen 0.1.0 (new)" in proc.stderr

    proc = aigc("plugins", "list", "--json", python=python)
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)}
    assert listed["e2e-gen"]["components"][0] == {"kind": "generator", "name": "e2e-gen", "modality": "image",
                                                  "description": "E2eGen: a image generator for aigc"}
    assert listed["e2e-post"]["components"][0]["kind"] == "post-processor"
    assert listed["e2e-src"]["components"][0]["kind"] == "data-source"
    assert "warning" not in proc.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                            *[str(d / "tests") for d in dirs]], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=300)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "25 passed" in tests.stdout

    proc = aigc("plugins", "uninstall", "e2e-post", python=python)
    assert proc.returncode == 0, proc.stderr
    names = {p["name"] for p in json.loads(aigc("plugins", "list", "--json", python=python).stdout)}
    assert "e2e-post" not in names and {"e2e-gen", "e2e-src"} <= names
