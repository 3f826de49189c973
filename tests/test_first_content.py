"""Generating from a finished run loads the generator alone, never the training stack (issue 30).

`aigc generate` on a run of every bundled backend, in a fresh interpreter: after each one,
`sys.modules` must hold none of Lightning, torchmetrics or matplotlib, which cost seconds to import
and which generation does not use. Checked after each backend, so a failure names the backend that
brought the module in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_testutil import ROOT, tiny_backend_configs

TRAINING_STACK = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib")

PROBE = """
import json, sys
from aigc_core.cli import main
stack = set(json.loads(sys.argv[1]))
found = {}
for name, run, out in json.loads(sys.argv[2]):
    code = main(["generate", run, "-n", "2", "--seed", "1", "--out", out])
    found[name] = {"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & stack)}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def backend_runs(tmp_path_factory) -> dict[str, Path]:
    from aigc_core import Pipeline, get_registry

    known = set(get_registry().names("generator"))
    runs = {}
    for name, config in tiny_backend_configs(tmp_path_factory.mktemp("backends")).items():
        if name not in known:
            continue
        Pipeline.from_config(config).fit()
        runs[name] = Path(config["output"]["dir"])
    return runs


def test_generate_imports_no_training_stack_for_any_backend(backend_runs, tmp_path):
    missing = {"dcgan", "vae", "ddpm", "causal-lm", "mel-diffusion"} - set(backend_runs)
    if missing:
        pytest.skip(f"plugins not installed for: {', '.join(sorted(missing))}")
    jobs = [(name, str(run), str(tmp_path / name)) for name, run in backend_runs.items()]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(TRAINING_STACK), json.dumps(jobs)],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for name, result in found.items():
        assert result["code"] == 0, f"aigc generate failed on the {name} run: {done.stderr[-1000:]}"
        assert (tmp_path / name).is_dir() and any((tmp_path / name).iterdir()), f"{name}: nothing written"
    loaded = {name: result["loaded"] for name, result in found.items() if result["loaded"]}
    assert not loaded, f"generation imported the training stack: {loaded}"
