"""Every backend's default LoRA targets name real layers of a type LoRA can adapt.

``Generator.adapter_targets`` uses peft's ``target_modules`` semantics: an entry matches a module
whose qualified name equals it or ends with ``.<entry>``. A default that matches nothing would
adapt nothing (or fail the adapter's own check), and one that matches a norm or an activation
cannot be adapted at all, so each backend's tiny generator is built and every entry checked.
Where which layers exist depends on the size (a DCGAN's transposed convolutions, a U-Net's
attention), the class lists them all and the instance keeps those it has: both are checked.
"""

from __future__ import annotations

import copy

import pytest
import torch

from aigc_core import Pipeline
from aigc_testutil import tiny_backend_configs

BACKENDS = ["dcgan", "vae", "ddpm", "causal-lm", "mel-diffusion"]


def supported_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    nn = torch.nn
    return (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding, Conv1D)


def matches(name: str, entry: str) -> bool:
    return name == entry or name.endswith("." + entry)


def build(config: dict, tmp_path, **generator):
    config = {**config, "generator": {**config["generator"], **generator}}
    pipe = Pipeline.from_config(config)
    return pipe.gen.cls.build(pipe.gen.params, pipe.data_source(), tmp_path / "work")


def unmatched(generator, targets) -> list[str]:
    """Entries that match no module of a LoRA-supported type (with what they did match, if anything)."""
    kinds = supported_types()
    modules = list(generator.named_modules())
    bad = []
    for entry in targets:
        hit = [type(m).__name__ for n, m in modules if matches(n, entry)]
        ok = [n for n, m in modules if matches(n, entry) and isinstance(m, kinds)]
        if not ok:
            bad.append(f"{entry!r} (matches {hit or 'nothing'})")
    return bad


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    return tiny_backend_configs(tmp_path_factory.mktemp("targets"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_default_target_names_an_adaptable_layer(configs, tmp_path, backend):
    generator = build(configs[backend], tmp_path)
    declared = type(generator).adapter_targets
    assert declared and generator.adapter_targets, f"{backend}: no default adapter targets"
    assert unmatched(generator, generator.adapter_targets) == []
    if backend not in ("ddpm", "mel-diffusion"):  # the tiny U-Nets have no attention: the next test
        assert unmatched(generator, declared) == []


@pytest.mark.parametrize("backend, sizes", [("ddpm", ["debug", "small"]), ("mel-diffusion", ["debug", "small"])])
def test_every_declared_target_exists_at_some_size(configs, tmp_path, backend, sizes):
    """The class lists attention too; a size without attention drops those entries, one with
    attention has every entry, and no entry is dropped where its layers exist."""
    found = set()
    for size in sizes:
        generator = build(configs[backend], tmp_path / size, size=size)
        assert unmatched(generator, generator.adapter_targets) == []
        dropped = [t for t in type(generator).adapter_targets if t not in generator.adapter_targets]
        names = [n for n, _ in generator.named_modules()]
        assert [t for t in dropped if any(matches(n, t) for n in names)] == []
        found |= set(generator.adapter_targets)
    assert found == set(type(generator).adapter_targets)


@pytest.mark.parametrize("image_size, convs", [(8, []), (16, ["body.0"]), (32, ["body.0", "body.3"]),
                                               (64, ["body.0", "body.3", "body.6"])])
def test_dcgan_adapts_every_transposed_conv_but_the_one_that_makes_pixels(configs, tmp_path, image_size, convs):
    config = {**configs["dcgan"], "data": {**configs["dcgan"]["data"], "image_size": image_size}}
    generator = build(config, tmp_path)
    assert generator.adapter_targets == ("project.0", *convs)
    assert unmatched(generator, generator.adapter_targets) == []
    last = [m for m in generator.G.body if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    assert last.out_channels == 1  # the one left out: the digits' single channel


@pytest.mark.parametrize("backend", ["vae", "ddpm", "causal-lm", "mel-diffusion"])
def test_peft_adapts_the_default_targets(configs, tmp_path, backend):
    """peft itself accepts the defaults on the layer types it supports (ConvTranspose2d, the
    DCGAN's, is aigc's own LoRA layer and not peft's): every matched module gets a lora_A."""
    from peft import LoraConfig, inject_adapter_in_model

    generator = build(configs[backend], tmp_path)
    targets = [t for t in generator.adapter_targets
               if not any(matches(n, t) and isinstance(m, torch.nn.ConvTranspose2d)
                          for n, m in generator.named_modules())]
    net = copy.deepcopy(generator)
    hit = [n for n, _ in net.named_modules() if any(matches(n, t) for t in targets)]
    inject_adapter_in_model(LoraConfig(r=2, target_modules=targets), net)
    adapted = {n for n, m in net.named_modules() if hasattr(m, "lora_A")}
    assert hit and set(hit) <= adapted
