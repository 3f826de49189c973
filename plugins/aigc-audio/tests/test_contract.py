"""MelVAE and MelDiffusion against the aigc contract, through the core's test-kit (as every plugin does)."""

from aigc_core.testing import GeneratorContractTests

import aigc_audio.plugin
from aigc_audio.diffusion import MelDiffusion
from aigc_audio.model import MelVAE


def synth_notes():
    """The built-in procedural notes, few and short (this model reads the source's own dataset)."""
    from aigc_core import get_registry
    from aigc_core.store.config import build_params

    SynthNotes = get_registry().get("data_source", "synth-notes", "data.source").load()

    params = build_params(SynthNotes.Params, {"limit": 24, "batch_size": 8, "duration": 0.25}, "data")
    return SynthNotes(params, seed=0)


class TestMelVAE(GeneratorContractTests):
    plugin = aigc_audio.plugin
    generator = MelVAE
    modality = "audio"
    params = {"size": "debug"}

    def source(self):
        return synth_notes()


class TestMelDiffusion(TestMelVAE):
    generator = MelDiffusion
    params = {"size": "debug", "griffin_lim_iters": 4}
    options = {"num_inference_steps": 3, "batch_size": 4}
