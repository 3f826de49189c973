"""An adapter's base keeps its batch-norm statistics: the model trained is the model reloaded.

A personalised run saves the LoRA tensors only. Batch norm's running mean and variance are state
of the base, not of the adapter; if they drifted toward the few examples while the adapter
trained, the reloaded model (base statistics + adapter) would not be the one that was trained,
and the base with its adapter off would not give its own bytes in the process that trained it.
bench/bench_personalise.py found it: a DCGAN adapted to digits drew digits in the training
process and noise once reloaded.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from aigc_core.testing import generate


def _dcgan():
    from aigc_core.store.config import build_params
    from aigc_gan.model import DCGAN

    torch.manual_seed(0)
    return DCGAN(build_params(DCGAN.Params, {"size": "debug", "conditional": True}, "generator"),
                 {"shape": [1, 16, 16], "num_classes": 10})


def _statistics(module) -> dict:
    """Running statistics by the base's names: a norm an adapter trains whole keeps the base's
    under ``original_module`` and a copy under ``modules_to_save.<adapter>``; both must hold still."""
    return {re.sub(r"\.(original_module|modules_to_save\.[^.]+)\.", ".", k): v.clone()
            for k, v in module.state_dict().items() if "running_" in k}


def _norms(module) -> list:
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_training_with_an_adapter_leaves_the_base_statistics_and_bytes_alone():
    from aigc_core.generation.adapters import AdapterSpec, attach, disabled, merge

    generator = _dcgan()
    before = [item.data for item in generate(generator, 6, seed=3).items]
    statistics = _statistics(generator)
    assert statistics and _norms(generator.G)
    attach(generator, AdapterSpec(rank=2, targets=["project.0"]))
    generator.train()  # what Lightning does at every epoch's start
    z = torch.randn(16, generator.params.latent) * 3.0 + 1.0  # a batch far from the base's
    generator.G(z, torch.arange(16) % 10)
    assert all(torch.equal(v, statistics[k]) for k, v in _statistics(generator).items())
    assert not any(m.training for m in _norms(generator.G))
    with disabled(generator):
        after = [item.data for item in generate(generator, 6, seed=3).items]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))

    merge(generator)  # a standalone model trains like any other: its statistics follow the data again
    generator.train()
    assert all(m.training for m in _norms(generator.G))
    generator.G(z, torch.arange(16) % 10)
    assert not all(torch.equal(v, statistics[k]) for k, v in _statistics(generator).items())
