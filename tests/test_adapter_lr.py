"""``generator.adapter.lr_scale``: the adapter's learning rate apart from full fine-tuning's.

A LoRA adapter wants a larger learning rate than full fine-tuning of the same base (#24: the text
adapter at the full fine-tune's best rate stayed 1.2x its held-out loss, at 10x that rate within
1.03x). The config's ``lr`` is full fine-tuning's too, so the adapter's is a multiple of it, applied
to the optimiser groups that hold adapter weights only: a GAN's discriminator, which is no adapter,
keeps its rate, and a schedule keeps its shape.
"""

from __future__ import annotations

import pytest
import torch

from aigc_core import ConfigError


def _dcgan_module(scale: float):
    from aigc_core.contract.training_module import training_module
    from aigc_core.generation.adapters import AdapterSpec, attach, scale_lr
    from aigc_core.store.config import build_params
    from aigc_gan.model import DCGAN

    torch.manual_seed(0)
    generator = DCGAN(build_params(DCGAN.Params, {"size": "debug", "conditional": True, "class_norm": True,
                                                  "lr_g": 2e-4, "lr_d": 3e-4}, "generator"),
                      {"shape": [1, 16, 16], "num_classes": 10})
    spec = AdapterSpec(rank=2, lr_scale=scale)
    attach(generator, spec)
    module = training_module(generator)
    scale_lr(module, spec)
    return module


def test_lr_scale_multiplies_the_adapters_rate_and_leaves_the_discriminators():
    opt_g, opt_d = _dcgan_module(10.0).configure_optimizers()
    assert [g["lr"] for g in opt_g.param_groups] == [pytest.approx(2e-3)]
    assert [g["lr"] for g in opt_d.param_groups] == [3e-4]
    opt_g, opt_d = _dcgan_module(1.0).configure_optimizers()  # the default: the generator's own rate
    assert [g["lr"] for g in opt_g.param_groups] == [2e-4] and [g["lr"] for g in opt_d.param_groups] == [3e-4]


def test_lr_scale_keeps_the_schedule_and_scales_its_base():
    """A scheduler built in ``configure_optimizers`` multiplies its own base rates at every step:
    those must be scaled too, or the first step would put the generator's rate back."""
    from aigc_core.generation.adapters import AdapterSpec, scale_lr

    weight = torch.nn.Parameter(torch.zeros(2, 2))

    class Generator(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

    class Module:
        generator = Generator()

        def configure_optimizers(self):
            params = [p for p in self.generator.parameters() if p.requires_grad]
            opt = torch.optim.AdamW([{"params": params}, {"params": [weight], "lr": 1.0}], lr=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    module = Module()
    from aigc_core.generation.adapters import attach

    spec = AdapterSpec(rank=1, targets=["lin"], lr_scale=4.0)
    attach(module.generator, spec)
    weight.requires_grad_(False)  # a frozen weight in another group: not the adapter's, not trained
    scale_lr(module, spec)
    configured = module.configure_optimizers()
    opt, sched = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04) and opt.param_groups[1]["lr"] == 1.0
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)  # 0.04 * 0.5: the schedule, from the scaled base


def test_lr_scale_refuses_a_group_mixing_adapter_and_other_trainable_weights():
    from aigc_core.generation.adapters import AdapterSpec, attach, scale_lr

    other = torch.nn.Parameter(torch.zeros(3))

    class Module:
        generator = torch.nn.Sequential(torch.nn.Linear(2, 2))

        def configure_optimizers(self):
            return torch.optim.Adam([*self.generator.parameters(), other], lr=0.01)

    module = Module()
    spec = AdapterSpec(rank=1, targets=["0"], lr_scale=3.0)
    attach(module.generator, spec)
    scale_lr(module, spec)
    with pytest.raises(ConfigError, match=r"^generator\.adapter\.lr_scale: .*one optimiser group with others"):
        module.configure_optimizers()
