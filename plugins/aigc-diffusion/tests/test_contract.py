"""The DDPM against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GeneratorContract, GeneratorContractTests, check_registrations, tiny_source

import aigc_diffusion.plugin
from aigc_diffusion.model import DDPM

FAST = {"num_inference_steps": 4, "batch_size": 4}


class TestDDPM(GeneratorContractTests):
    plugin = aigc_diffusion.plugin
    generator = DDPM
    modality = "image"
    params = {"size": "debug"}
    options = FAST


def test_the_plugin_registers_the_ddpm_alone():
    entries = check_registrations(aigc_diffusion.plugin)
    assert [(e["kind"], e["name"]) for e in entries] == [("generator", "ddpm")]


@pytest.mark.parametrize("options", [{"scheduler": "ddpm"}, {"scheduler": "dpm-solver", "guidance_scale": 0.0}])
def test_contract_with_other_samplers(tmp_path, options):
    """A stochastic sampler (ddpm adds noise every step) and DPM-Solver keep the seeding contract."""
    GeneratorContract(DDPM, tiny_source("image"), params={"size": "debug", "conditional": False},
                      options={**FAST, **options}, workdir=tmp_path).run(["output", "same-seed", "round-trip"])
