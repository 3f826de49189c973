"""``aigc plugins install/uninstall``: the dry-run safety check, offline.

pip resolves against fake wheels in a local folder (``--no-index --find-links``); every CLI run
here also passes ``--dry-run``, so even a broken refusal could not touch the environment.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from aigc_core.plugins.install import Change, changes_from_report, conflicts


def wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel (metadata only), written without any build tool."""
    norm = name.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    files = {
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: aigc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name_in_zip, text in files.items():
            zf.writestr(name_in_zip, text)
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheels")
    wheel(folder, "torch", "2.0.0")
    wheel(folder, "aigc-core", "9.0.0")
    wheel(folder, "aigc-oldtorch", "0.1.0", ("torch==2.0.0",))
    wheel(folder, "aigc-future-core", "0.1.0", ("aigc-core==9",))
    wheel(folder, "aigc-harmless", "0.1.0", ("aigc-core>=0.1",))
    return folder


def aigc(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_refuses_a_plugin_that_replaces_torch(index):
    proc = aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(index), "aigc-oldtorch")
    assert proc.returncode == 1, proc.stderr
    from importlib.metadata import version

    assert f"torch {version('torch')} -> 2.0.0" in proc.stderr
    assert "aigc-oldtorch 0.1.0 (new)" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("aigc: error: refused to install aigc-oldtorch") and "--force" in last
    assert "Traceback" not in proc.stderr


def test_refuses_a_plugin_that_needs_another_core(index):
    proc = aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(index), "aigc-future-core")
    assert proc.returncode == 1
    assert "aigc-core 0.1.0 -> 9.0.0" in proc.stderr
    assert "replace aigc-core" in proc.stderr


def test_force_overrides_the_refusal(index):
    proc = aigc("plugins", "install", "--dry-run", "--force", "--no-index", "-f", str(index), "aigc-oldtorch")
    assert proc.returncode == 0, proc.stderr
    assert "installing anyway (--force)" in proc.stderr


def test_a_harmless_plugin_passes_the_check(index):
    proc = aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(index), "aigc-harmless")
    assert proc.returncode == 0, proc.stderr
    assert "aigc-harmless 0.1.0 (new)" in proc.stderr
    assert "break" not in proc.stderr


def test_unresolvable_spec_is_one_line_error(index):
    proc = aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(index), "aigc-does-not-exist")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("aigc: error: pip cannot resolve aigc-does-not-exist")


@pytest.mark.parametrize("args, message", [
    (["plugins", "install"], "give at least one SPEC"),
    (["plugins", "uninstall", "no-such-plugin"], "no installed plugin named 'no-such-plugin'"),
    (["plugins", "uninstall", "builtin"], "cannot be uninstalled"),
])
def test_bad_install_and_uninstall_arguments(args, message):
    proc = aigc(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_conflicts_names_broken_plugin_requirements():
    changes = [Change("numpy", "2.4.6", "1.26.0"), Change("aigc-new", None, "0.1.0")]
    requirements = {
        "aigc-core": ["numpy>=1.26", "torch==2.14.1"],
        "aigc-audio": ["numpy>=2", "soundfile>=0.12", 'pytest; extra == "test"'],
    }
    problems = conflicts(changes, requirements)
    assert problems == ["aigc-audio requires numpy>=2, but numpy would become 1.26.0"]


def test_conflicts_ignores_extras_new_packages_and_replaced_plugins():
    changes = [Change("pytest", "9.2.0", "7.0.0"), Change("aigc-audio", "0.1.0", "0.2.0"),
               Change("soundfile", None, "0.13.0")]
    requirements = {"aigc-audio": ["soundfile>=0.14"], "aigc-text": ['pytest>=8; extra == "test"']}
    assert conflicts(changes, requirements) == []


def test_protected_packages_may_be_added_but_not_replaced():
    assert conflicts([Change("transformers", None, "5.0.0")], {}) == []
    problems = conflicts([Change("pytorch-lightning", "2.6.6", "2.7.0")], {})
    assert problems and "pytorch-lightning 2.6.6 with 2.7.0" in problems[0]


def test_changes_from_report_reads_pip_report():
    report = {"install": [{"metadata": {"name": "Torch", "version": "2.0.0"}},
                          {"metadata": {"name": "aigc_new.plugin", "version": "1.0"}}]}
    changes = changes_from_report(report, {"torch": "2.14.1"})
    assert [str(c) for c in changes] == ["torch 2.14.1 -> 2.0.0", "aigc-new-plugin 1.0 (new)"]
