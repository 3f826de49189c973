"""The test-kit catches each broken contract and names the check and the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aigc_core import (Content, DataParams, Field, GeneratorTraining, Params, DataSource, Generator, Item,
                       PostProcessor, sample_seed)
from aigc_core.testing import (ContractFailure, DataSourceContract, GeneratorContract, PostProcessorContract,
                               check_registrations, tiny_source)


class P(Params):
    lr: float = 0.1


class O(Params):
    scale: float = 1.0


class GoodTraining(GeneratorTraining):
    def training_step(self, batch, batch_idx):
        return ((batch[0] - self.generator.mean) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.params.lr)


class Good(Generator):
    modality = "image"
    Params = P
    GenerateOptions = O
    training = GoodTraining

    def __init__(self, params, info):
        super().__init__(params, info)
        self.mean = nn.Parameter(torch.full(tuple(info["shape"]), 0.5))

    def noise(self, seed, i):
        return torch.rand(self.mean.shape, generator=torch.Generator().manual_seed(sample_seed(seed, i)))

    def generate(self, n, seed, options):
        return Content("image", [Item(((self.mean + 0.1 * options.scale * self.noise(seed, i)).clamp(0, 1))
                                      .numpy().astype(np.float32), {"index": i}) for i in range(n)])


class IgnoresSeed(Good):
    def generate(self, n, seed, options):
        return Content("image", [Item((self.mean * torch.rand(self.mean.shape)).numpy(), {}) for _ in range(n)])


class Float64(Good):
    def generate(self, n, seed, options):
        out = super().generate(n, seed, options)
        return out.replace([Item(i.data.astype(np.float64), i.meta) for i in out.items])


class OutOfRange(Good):
    def generate(self, n, seed, options):
        out = super().generate(n, seed, options)
        return out.replace([Item(i.data + 1.0, i.meta) for i in out.items])


class FailsOnEmpty(Good):
    def generate(self, n, seed, options):
        if n == 0:
            raise IndexError("list index out of range")
        return super().generate(n, seed, options)


class ForgetsState(Good):
    def artifact_state(self):
        return {"mean": torch.zeros_like(self.mean)}


class WrongModality(Good):
    modality = "audio"


class BatchDependent(Good):
    def generate(self, n, seed, options):
        g = torch.Generator().manual_seed(seed)
        noise = torch.rand((n, *self.mean.shape), generator=g)
        return Content("image", [Item((self.mean * noise[n - 1 - i]).numpy().astype(np.float32), {}) for i in range(n)])


class KeywordOptions(Good):
    """A plugin API 3 generator: each option a keyword argument with its default repeated."""

    def generate(self, n, seed=0, scale=1.0):
        return super().generate(n, seed, O(scale=scale))


class RepeatsOption(Good):
    def generate(self, n, seed, options, scale=1.0):
        return super().generate(n, seed, options)


class UnserialisableMeta(Good):
    def generate(self, n, seed, options):
        out = super().generate(n, seed, options)
        for item in out.items:
            item.meta["tensor"] = torch.zeros(1)
        return out


@pytest.fixture(scope="module")
def image_source():
    return tiny_source("image")


def test_good_generator_passes(image_source, tmp_path):
    GeneratorContract(Good, image_source, workdir=tmp_path).run()


@pytest.mark.parametrize("cls, check, reason", [
    (IgnoresSeed, "same-seed", "same seed must give the same output"),
    (Float64, "output", "dtype float64, expected float32"),
    (OutOfRange, "output", "expected [0, 1]"),
    (FailsOnEmpty, "empty", "raised IndexError: list index out of range"),
    (ForgetsState, "round-trip", "after save_artifact/load_artifact, item 0"),
    (WrongModality, "modality", "the data source given is 'image', the generator declares 'audio'"),
    (BatchDependent, "same-seed", "must depend on (seed, index) alone"),
    (KeywordOptions, "params", "plugin API 4 wants generate(self, n, seed, options)"),
    (RepeatsOption, "params", "generate() repeats GenerateOptions.scale as an argument"),
    (UnserialisableMeta, "metadata", "JSON-serialisable"),
])
def test_broken_generator_names_check_and_reason(image_source, tmp_path, cls, check, reason):
    contract = GeneratorContract(cls, image_source, workdir=tmp_path)
    with pytest.raises(ContractFailure) as info:
        contract.check(check)
    assert info.value.failures.keys() == {check}
    assert reason in info.value.failures[check]
    message = str(info.value)
    assert f"[{check}]" in message and cls.__qualname__ in message


def test_run_lists_every_failing_check(image_source, tmp_path):
    with pytest.raises(ContractFailure) as info:
        GeneratorContract(Float64, image_source, workdir=tmp_path).run(["output", "empty", "same-seed"])
    assert list(info.value.failures) == ["output"]


def test_untrainable_generator_fails_train_step(image_source, tmp_path):
    class FrozenTraining(GoodTraining):
        def training_step(self, batch, batch_idx):
            return (self.generator.mean * 0).sum() + batch[0].mean() * 0

    class Frozen(Good):
        training = FrozenTraining

    with pytest.raises(ContractFailure, match=r"\[train-step\] one training step changed no parameter"):
        GeneratorContract(Frozen, image_source, workdir=tmp_path).check("train-step")


def test_invalid_params_default_is_reported(image_source):
    class Strict(Params):
        size: int = Field(0, ge=1)

    class NeedsSize(Good):
        Params = Strict

    with pytest.raises(ContractFailure, match=r"\[params\] generator cannot be built .*generator.size: must be at least 1"):
        GeneratorContract(NeedsSize, image_source).check("params")
    GeneratorContract(NeedsSize, image_source, params={"size": 2}).check("params")


# -- post-processors -----------------------------------------------------------------------------

class Halve(PostProcessor):
    def __call__(self, content):
        return content.replace([Item(i.data * 0.5, dict(i.meta)) for i in content.items])


class Mutates(PostProcessor):
    def __call__(self, content):
        for item in content.items:
            item.data *= 0.5
        return content


class DropsSilently(PostProcessor):
    def __call__(self, content):
        return Content(content.modality, content.items[1:], [content.items[0]])


class EmptyFails(PostProcessor):
    def __call__(self, content):
        top = max(float(i.data.max()) for i in content.items)
        return content.replace([Item(i.data / top, i.meta) for i in content.items])


def test_good_postprocessor_passes():
    PostProcessorContract(Halve, "image").run()


@pytest.mark.parametrize("cls, check, reason", [
    (Mutates, "no-mutation", "changed in place"),
    (DropsSilently, "drops", "dropped before this step are lost"),
    (EmptyFails, "empty", "raised ValueError"),
])
def test_broken_postprocessor_names_check_and_reason(cls, check, reason):
    with pytest.raises(ContractFailure) as info:
        PostProcessorContract(cls, "image").run()
    assert check in info.value.failures and reason in info.value.failures[check]


# -- data sources and registrations ---------------------------------------------------------------

class BadSource(DataSource):
    modality = "image"
    Params = DataParams

    def split(self, name):
        return [(torch.rand(8, 8) * 3, 0)] * 4

    @property
    def info(self):
        return {"modality": "image", "shape": [1, 8, 8]}


def test_data_source_with_wrong_item_format_fails():
    with pytest.raises(ContractFailure) as info:
        DataSourceContract(BadSource).run(["items", "modality", "info"])
    assert list(info.value.failures) == ["items"]
    assert "expected CHW" in info.value.failures["items"]


def test_registration_modality_mismatch_and_missing_description():
    class Plugin:
        __name__ = "fake_plugin"

        @staticmethod
        def aigc_register_generators(register):
            register("good", Good, modality="text", description="")

    with pytest.raises(ContractFailure) as info:
        check_registrations(Plugin)
    assert "registered as text but its class declares 'image'" in info.value.failures["modality good"]
    assert "no description" in info.value.failures["metadata good"]
