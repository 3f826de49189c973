"""The DCGAN on its own: determinism, conditioning, artifacts, one training step (its sizes: test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import CheckpointError, ConfigError
from aigc_core.store.config import build_params
from aigc_gan.model import DCGAN
from aigc_core.testing import generate


def make(shape=(1, 16, 16), classes=10, **params):
    return DCGAN(build_params(DCGAN.Params, {"size": "debug", **params}, "generator"),
                 {"shape": list(shape), "num_classes": classes})


def test_same_seed_same_images_and_batch_independence():
    model = make()
    a = generate(model, 5, seed=7, batch_size=2)
    b = generate(model, 3, seed=7, batch_size=2)
    c = generate(model, 5, seed=8, batch_size=2)
    assert all(np.array_equal(x.data, y.data) for x, y in zip(a, b))
    assert not np.array_equal(a.items[0].data, c.items[0].data)
    tail = generate(model, 2, seed=7, start=3, batch_size=2)
    assert np.array_equal(tail.items[0].data, a.items[3].data), "sample i depends on (seed, i) only"


def test_conditioning_labels_and_bad_label():
    model = make(conditional=True)
    content = generate(model, 12, seed=0)
    assert [i.meta["label"] for i in content][:11] == list(range(10)) + [0]
    assert {i.meta["label"] for i in generate(model, 3, seed=0, label=4)} == {4}
    with pytest.raises(ConfigError, match=r"generate\.label: label 10 is not a class"):
        generate(model, 1, seed=0, label=10)
    with pytest.raises(ConfigError, match="no classes"):
        generate(make(), 1, seed=0, label=1)


def test_one_training_step_changes_both_networks():
    import pytorch_lightning as pl

    from aigc_gan.training import DCGANTraining

    model = DCGANTraining(make(spectral_norm=True, conditional=True))
    x = torch.rand(8, 1, 16, 16)
    y = torch.randint(0, 10, (8,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    g_before = [p.detach().clone() for p in model.generator.G.parameters()]
    d_before = [p.detach().clone() for p in model.D.parameters()]
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.D.parameters()))
    assert torch.isfinite(trainer.callback_metrics["loss_d"]) and torch.isfinite(trainer.callback_metrics["loss_g"])


def test_artifact_round_trip_and_foreign_weights(tmp_path):
    model = make(conditional=True)
    with torch.no_grad():
        for p in model.G_ema.parameters():
            p.add_(0.01)
    model.save_artifact(tmp_path)
    params = build_params(DCGAN.Params, {"size": "debug", "conditional": True}, "generator")
    loaded = DCGAN.load_artifact(tmp_path, params)
    a, b = generate(model, 4, seed=1), generate(loaded, 4, seed=1)
    assert all(np.array_equal(x.data, y.data) for x, y in zip(a, b))
    other = build_params(DCGAN.Params, {"size": "small"}, "generator")
    with pytest.raises(CheckpointError, match="does not fit this dcgan"):
        DCGAN.load_artifact(tmp_path, other)
