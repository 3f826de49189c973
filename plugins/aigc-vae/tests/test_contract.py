"""VAE against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations, tiny_source

import aigc_vae.plugin
from aigc_vae.model import VAE


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return GeneratorContract(VAE, tiny_source("image", shape=[1, 16, 16]), params={"size": "debug"},
                             workdir=tmp_path_factory.mktemp("vae-contract"), modality="image")


def test_registrations():
    check_registrations(aigc_vae.plugin)


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_contract(contract, check):
    contract.check(check)
