"""What a finished vae run loads must not pull in the training stack (issue 30).

``aigc generate`` and ``aigc serve`` import the generator's module and the metric; Lightning,
torchmetrics and matplotlib together cost seconds of start-up that sampling never uses. Checked
in a fresh interpreter, because this test process has long imported Lightning.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib")
SAMPLING_MODULES = ("aigc_vae.plugin", "aigc_vae.model", "aigc_vae.nets", "aigc_vae.likelihoods", "aigc_vae.metrics")


def test_model_and_metric_modules_import_no_training_stack():
    code = (
        "import json, sys\n"
        f"for name in {SAMPLING_MODULES!r}: __import__(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))\n" % (HEAVY,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_generator_names_its_training_module_and_that_one_trains_it():
    from aigc_core import GeneratorTraining
    from aigc_vae.model import VAE

    assert issubclass(VAE.training_class(), GeneratorTraining)
