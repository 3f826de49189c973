"""Layers an adapter trains whole, and the size of a transposed convolution's LoRA.

#24 wants an adapter within 3% of its base. A low-rank correction of a layer into one image
channel, or of a per-channel gain, costs as much as the layer itself; such layers are trained
whole instead (``generator.adapter.whole``, peft's ``modules_to_save``) and must behave like the
LoRA tensors: saved with the adapter and nothing else, switched off with it (the base's bytes
back), reloaded into the same output, and folded in by ``merge``. A transposed convolution's
LoRA puts its kernel on the side with fewer channels, which halves a decoder's adapter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import ConfigError
from aigc_core.testing import generate


def _dcgan():
    from aigc_core.store.config import build_params
    from aigc_gan.model import DCGAN

    torch.manual_seed(0)
    return DCGAN(build_params(DCGAN.Params, {"size": "debug", "conditional": True, "class_norm": True}, "generator"),
                 {"shape": [1, 16, 16], "num_classes": 10})


def _images(generator) -> list[np.ndarray]:
    return [item.data for item in generate(generator, 6, seed=3).items]


def test_layers_trained_whole_are_saved_switched_off_reloaded_and_merged_with_the_adapter():
    from aigc_core.generation.adapters import AdapterSpec, adapter_state, attach, disabled, load_adapter_state, merge, resolved

    spec = AdapterSpec(rank=2, targets=["body.0"], whole=["embed", "body.1", "body.3"])  # body.1: a class norm
    generator = _dcgan()
    before = _images(generator)
    attach(generator, spec)
    trainable = {name for name, p in generator.G.named_parameters() if p.requires_grad}
    assert trainable == {"body.0.lora_A.default.weight", "body.0.lora_B.default.weight",
                         "embed.modules_to_save.default.weight", "body.1.modules_to_save.default.gain.weight",
                         "body.1.modules_to_save.default.shift.weight", "body.3.modules_to_save.default.weight",
                         "body.3.modules_to_save.default.bias"}
    with torch.no_grad():  # what training does: the adapter's tensors move
        for p in generator.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))
    after = _images(generator)
    assert not all(np.array_equal(a, b) for a, b in zip(before, after))
    with disabled(generator):
        assert all(np.array_equal(a, b) for a, b in zip(before, _images(generator)))

    state = adapter_state(generator)
    assert {k for k in state if "modules_to_save" in k and "running_" not in k and "batches" not in k} == {
        "G.embed.modules_to_save.weight", "G.body.1.modules_to_save.gain.weight",
        "G.body.1.modules_to_save.shift.weight", "G.body.3.modules_to_save.weight", "G.body.3.modules_to_save.bias"}
    assert not any("original_module" in k for k in state)  # the base's own copy is never the adapter's
    again = _dcgan()
    attach(again, spec)
    load_adapter_state(again, state)
    assert all(np.array_equal(a, b) for a, b in zip(after, _images(again)))

    merge(again)
    assert not any(hasattr(m, "modules_to_save") or hasattr(m, "lora_A") for m in again.modules())
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(after, _images(again)))
    assert resolved(_dcgan(), AdapterSpec()).whole == list(_dcgan().adapter_whole)  # what adapter.json records


@pytest.mark.parametrize("whole, words", [(["body.9"], "names no layer"), (["body.0"], "is the LoRA layer"),
                                          (["body"], "holds or is the LoRA layer"), (["body.2"], "no weights")])
def test_bad_whole_layers_are_one_error_naming_the_key(whole, words):
    from aigc_core.generation.adapters import AdapterSpec, check_spec

    with pytest.raises(ConfigError) as err:
        check_spec(_dcgan(), AdapterSpec(rank=2, targets=["body.0"], whole=whole))
    assert err.value.key == "generator.adapter.whole" and words in str(err.value)


def test_a_transposed_convolution_lora_carries_its_kernel_on_the_narrow_side():
    from aigc_core.generation.adapters import AdapterSpec, adapter_state, attach, merge

    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(32, 8, 4, 2, 1), torch.nn.ConvTranspose2d(8, 16, 4, 2, 1))
    torch.manual_seed(0)
    attach(net, AdapterSpec(rank=4, targets=["0", "1"]))
    state = adapter_state(_Holder(net))
    sizes = {k: v.numel() for k, v in state.items()}
    assert sizes == {"0.lora_A.weight": 32 * 4, "0.lora_B.weight": 4 * 8 * 16,  # narrowing: kernel on B
                     "1.lora_A.weight": 8 * 4 * 16, "1.lora_B.weight": 4 * 16}  # widening: kernel on A
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    x = torch.randn(2, 32, 5, 5)
    adapted = net(x)
    merge(_Holder(net))
    assert torch.allclose(net(x), adapted, atol=1e-5)  # what merge folds in is what the layers computed


class _Holder(torch.nn.Module):
    """What ``adapter_state`` and ``merge`` expect of a generator: modules and an ``artifact_state``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def artifact_state(self) -> dict:
        return {k[len("net."):]: v for k, v in self.state_dict().items()}


def test_two_adapters_on_one_base_switch_their_whole_layers_with_them():
    """The server's case: one base, several adapters, one picked per request (``activate``)."""
    from aigc_core.generation.adapters import AdapterSpec, activate, adapter_state, attach, load_adapter_state

    specs = {"alice": AdapterSpec(rank=2, targets=["body.0"], whole=["body.1", "body.3"]),
             "bob": AdapterSpec(rank=2, targets=["body.0"], whole=["body.3"])}  # body.1 is the base's for bob
    alone = {}
    for name, seed in (("alice", 1), ("bob", 2)):
        generator = _dcgan()
        attach(generator, specs[name])
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in generator.parameters():
                if p.requires_grad:
                    p.add_(0.2 * torch.randn_like(p))
        alone[name] = (adapter_state(generator), _images(generator))
    shared = _dcgan()
    base = _images(shared)
    for name, (state, _) in alone.items():
        attach(shared, specs[name], name=name)
        load_adapter_state(shared, state, name=name)
    for name in ("alice", "bob", None, "alice"):
        activate(shared, name)
        expected = alone[name][1] if name else base
        assert all(np.array_equal(a, b) for a, b in zip(expected, _images(shared))), name
