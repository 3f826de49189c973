"""What a finished causal-lm run loads must not pull in the training stack (issue 30).

``aigc generate`` and ``aigc serve`` import the generator's module (and the metrics score with
its token windows); Lightning, torchmetrics and matplotlib cost seconds of start-up that sampling
never uses, and sklearn/scipy have no business at module level here either (transformers itself
may load scipy when it builds a model; that is its floor, not ours). Checked in a fresh
interpreter, because this test process has long imported Lightning.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib", "sklearn", "scipy")
SAMPLING_MODULES = ("aigc_text.plugin", "aigc_text.model", "aigc_text.sampling", "aigc_text.tokenizer",
                    "aigc_text.data", "aigc_text.metrics")


def test_model_data_and_metric_modules_import_no_training_stack():
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
    from aigc_text.model import CausalLM

    assert issubclass(CausalLM.training_class(), GeneratorTraining)
