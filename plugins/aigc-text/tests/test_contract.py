"""CausalLM against the aigc contract, through the core's test-kit (as every plugin does)."""

import pytest

from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations, tiny_source

import aigc_text.plugin
from aigc_text.model import CausalLM


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return GeneratorContract(CausalLM, tiny_source("text"), params={"size": "debug"},
                             workdir=tmp_path_factory.mktemp("text-contract"), modality="text")


def test_registrations():
    check_registrations(aigc_text.plugin)


@pytest.mark.parametrize("check", GENERATOR_CHECKS)
def test_contract(contract, check):
    contract.check(check)
