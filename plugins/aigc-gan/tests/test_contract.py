"""The DCGAN against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations, tiny_source

import aigc_gan.plugin
from aigc_gan.model import DCGAN
from aigc_gan.stylegan import StyleGAN


#: Each generator of the plugin, at the size the contract runs it.
GENERATORS = {"dcgan": (DCGAN, {"size": "debug"}), "stylegan": (StyleGAN, {"size": "debug", "r1_every": 1})}


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def contract(request, tmp_path_factory):
    cls, params = GENERATORS[request.param]
    return GeneratorContract(cls, tiny_source("image"), params=params,
                             workdir=tmp_path_factory.mktemp(f"{request.param}-contract"), modality="image")


def test_registrations():
    entries = check_registrations(aigc_gan.plugin)
    assert [(e["kind"], e["name"]) for e in entries] == [("generator", "dcgan"), ("generator", "stylegan")]


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_contract(contract, check):
    contract.check(check)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_conditional_contract(tmp_path, name):
    """Class-conditional sampling (labels cycle with the index) keeps the seeding contract."""
    GeneratorContract(GENERATORS[name][0], tiny_source("image"), params={"size": "debug", "conditional": True},
                      workdir=tmp_path).run(["train-step", "output", "same-seed", "round-trip"])
