"""What a finished causal-lm run loads must not pull in the training stack (issue 30).

``aigc generate`` and ``aigc serve`` import the generator's module (and the metrics score with
its token windows); Lightning, torchmetrics and matplotlib cost seconds of start-up that sampling
never uses, and sklearn/scipy have no business at module level here either (transformers itself
may load scipy when it builds a model; that is its floor, not ours). Checked in a fresh
interpreter, because this test process has long imported Lightning.
"""

from __future__ import annotations

from aigc_core.testing import TRAINING_STACK, modules_loaded_by

HEAVY = (*TRAINING_STACK, "sklearn", "scipy")
SAMPLING_MODULES = ("aigc_text.plugin", "aigc_text.model", "aigc_text.sampling", "aigc_text.tokenizer",
                    "aigc_text.data", "aigc_text.metrics")


def test_model_data_and_metric_modules_import_no_training_stack():
    assert modules_loaded_by(SAMPLING_MODULES, HEAVY) == []


def test_the_generator_names_its_training_module_and_that_one_trains_it():
    from aigc_core import GeneratorTraining
    from aigc_text.model import CausalLM

    assert issubclass(CausalLM.training_class(), GeneratorTraining)
