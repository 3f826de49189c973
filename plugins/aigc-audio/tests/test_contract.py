"""MelVAE and MelDiffusion against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations

import aigc_audio.plugin
from aigc_audio.diffusion import MelDiffusion
from aigc_audio.model import MelVAE


def synth_notes():
    """The built-in procedural notes, few and short (this model reads the source's own dataset)."""
    from aigc_core import get_registry
    from aigc_core.config import build_params

    SynthNotes = get_registry().get("data_source", "synth-notes", "data.source").load()

    params = build_params(SynthNotes.Params, {"limit": 24, "batch_size": 8, "duration": 0.25}, "data")
    return SynthNotes(params, seed=0)


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return GeneratorContract(MelVAE, synth_notes(), params={"size": "debug"},
                             workdir=tmp_path_factory.mktemp("audio-contract"), modality="audio")


def test_registrations():
    check_registrations(aigc_audio.plugin)


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_contract(contract, check):
    contract.check(check)


@pytest.fixture(scope="module")
def diffusion_contract(tmp_path_factory):
    return GeneratorContract(MelDiffusion, synth_notes(), params={"size": "debug", "griffin_lim_iters": 4},
                             options={"num_inference_steps": 3, "batch_size": 4},
                             workdir=tmp_path_factory.mktemp("mel-diffusion-contract"), modality="audio")


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_mel_diffusion_contract(diffusion_contract, check):
    diffusion_contract.check(check)
