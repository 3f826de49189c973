"""The DCGAN against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations, tiny_source

import aigc_gan.plugin
from aigc_gan.model import DCGAN
from aigc_gan.stylegan import StyleGAN


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return GeneratorContract(DCGAN, tiny_source("image"), params={"size": "debug"},
                             workdir=tmp_path_factory.mktemp("dcgan-contract"), modality="image")


def test_registrations():
    entries = check_registrations(aigc_gan.plugin)
    assert [(e["kind"], e["name"]) for e in entries] == [("generator", "dcgan"), ("generator", "stylegan")]


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_contract(contract, check):
    contract.check(check)


def test_conditional_contract(tmp_path):
    """Class-conditional sampling (labels cycle with the index) keeps the seeding contract."""
    GeneratorContract(DCGAN, tiny_source("image"), params={"size": "debug", "conditional": True},
                      workdir=tmp_path).run(["train-step", "output", "same-seed", "round-trip"])


@pytest.fixture(scope="module")
def style_contract(tmp_path_factory):
    return GeneratorContract(StyleGAN, tiny_source("image"), params={"size": "debug", "r1_every": 1},
                             workdir=tmp_path_factory.mktemp("stylegan-contract"), modality="image")


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_stylegan_contract(style_contract, check):
    style_contract.check(check)


def test_stylegan_conditional_contract(tmp_path):
    GeneratorContract(StyleGAN, tiny_source("image"), params={"size": "debug", "conditional": True},
                      workdir=tmp_path).run(["train-step", "output", "same-seed", "round-trip"])
