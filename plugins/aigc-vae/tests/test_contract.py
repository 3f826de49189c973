"""VAE against the aigc contract, through the core's test-kit (as every plugin does)."""

from aigc_core.testing import GeneratorContractTests

import aigc_vae.plugin
from aigc_vae.model import VAE


class TestVAE(GeneratorContractTests):
    plugin = aigc_vae.plugin
    generator = VAE
    modality = "image"
    params = {"size": "debug"}
    source_info = {"shape": [1, 16, 16]}
