"""The plugin's GANs against the aigc contract, through the core's test-kit (as every plugin does),
and what both promise of image sizes."""

import numpy as np
import pytest

from aigc_core import ConfigError
from aigc_core.store.config import build_params
from aigc_core.testing import GENERATOR_CHECKS, GeneratorContract, check_registrations, generate, tiny_source

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


def make(name: str, shape: tuple) -> object:
    cls = GENERATORS[name][0]
    return cls(build_params(cls.Params, {"size": "debug"}, "generator"), {"shape": list(shape), "num_classes": 10})


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (1, 32, 32), (3, 64, 64)])
def test_sizes_follow_the_data(name, shape):
    content = generate(make(name, shape), 3, seed=0)
    assert len(content) == 3 and content.modality == "image"
    for item in content:
        assert item.data.shape == shape and item.data.dtype == np.float32
        assert 0.0 <= item.data.min() and item.data.max() <= 1.0


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_unsupported_size_names_the_key(name):
    with pytest.raises(ConfigError, match=rf"^data\.image_size: {name} needs square images of 8, 16, 32 or 64"):
        make(name, (1, 28, 28))
