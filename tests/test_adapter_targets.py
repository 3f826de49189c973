"""Every backend's default LoRA targets name real layers of a type LoRA can adapt.

``Generator.adapter_targets`` uses peft's ``target_modules`` semantics: an entry matches a module
whose qualified name equals it or ends with ``.<entry>``. A default that matches nothing would
adapt nothing (or fail the adapter's own check), and one that matches a norm or an activation
cannot be adapted at all, so each backend's tiny generator is built and every entry checked.
The class's list holds at every size; where more layers exist at some sizes (a DCGAN's transposed
convolutions, a U-Net's attention, a non-GPT-2 base's projections) the instance adds them: both
lists are checked.
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
    assert declared, f"{backend}: no default adapter targets"
    assert unmatched(generator, declared) == []  # the class's own list holds at every size
    assert set(declared) <= set(generator.adapter_targets)  # an instance only adds what it has
    assert unmatched(generator, generator.adapter_targets) == []


def test_unet_attention_is_a_target_where_the_unet_has_attention(configs, tmp_path):
    """The debug U-Net has no attention, the small one has it in its middle block."""
    from aigc_diffusion.denoiser import ADAPTER_TARGETS, ATTENTION_TARGETS

    for size, expected in (("debug", ADAPTER_TARGETS), ("small", ADAPTER_TARGETS + ATTENTION_TARGETS)):
        generator = build(configs["ddpm"], tmp_path / size, size=size)
        assert generator.adapter_targets == expected
        assert type(generator).adapter_targets == ADAPTER_TARGETS
        assert unmatched(generator, generator.adapter_targets) == []


def test_a_voice_adapts_its_outer_resnets_and_attention_and_trains_its_norms_whole(configs, tmp_path):
    """#24's 3% budget: LoRA on the full-resolution resnets, the input and output convolutions and
    the attention where there is some; norms and the digit embedding whole, at every size."""
    from aigc_diffusion.denoiser import ATTENTION_TARGETS

    for size, ups in (("debug", 1), ("small", 2)):
        generator = build(configs["mel-diffusion"], tmp_path / size, size=size)
        lora = set(generator.adapter_targets)
        assert {"conv_in", "conv_out", "down_blocks.0.resnets.0.conv1", f"up_blocks.{ups}.resnets.0.conv2"} <= lora
        assert not any(t.startswith("up_blocks.0") or "time_emb_proj" in t for t in lora)  # inner resnets left alone
        assert (set(ATTENTION_TARGETS) <= lora) == (size == "small")
        assert unmatched(generator, generator.adapter_targets) == []
        modules = [name for name, m in generator.named_modules() if any(True for _ in m.parameters(recurse=False))]
        assert all(any(matches(n, w) for n in modules) for w in generator.adapter_whole)
        assert {"norm1", "norm2", "conv_norm_out"} <= set(generator.adapter_whole)


@pytest.mark.parametrize("image_size, lora, last", [(8, ["project.0"], None), (16, ["body.0"], "body.3"),
                                                    (32, ["body.0"], "body.6"), (64, ["body.0"], "body.9")])
def test_dcgan_adapts_its_widest_conv_and_trains_the_cheap_layers_whole(configs, tmp_path, image_size, lora, last):
    """#24's 3% budget: LoRA on the first transposed convolution; norms, the class embedding and the
    convolution that makes the pixels (where a low-rank correction costs what the layer does) whole."""
    config = {**configs["dcgan"], "data": {**configs["dcgan"]["data"], "image_size": image_size}}
    generator = build(config, tmp_path)
    assert generator.adapter_targets == tuple(lora)
    assert unmatched(generator, generator.adapter_targets) == []
    convs = [n for n, m in generator.G.body.named_children() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert (f"body.{convs[-1]}" if len(convs) > 1 else None) == last
    assert (last in generator.adapter_whole) if last else not any(n.startswith("body.0") for n in generator.adapter_whole)
    modules = dict(generator.G.named_modules())
    assert all(entry in modules and any(True for _ in modules[entry].parameters()) for entry in generator.adapter_whole)
    assert not set(generator.adapter_whole) & set(generator.adapter_targets)


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
