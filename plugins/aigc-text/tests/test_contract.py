"""CausalLM against the aigc contract, through the core's test-kit (as every plugin does)."""

from aigc_core.testing import GeneratorContractTests

import aigc_text.plugin
from aigc_text.model import CausalLM


class TestCausalLM(GeneratorContractTests):
    plugin = aigc_text.plugin
    generator = CausalLM
    modality = "text"
    params = {"size": "debug"}
