"""The GAN options of current practice: each config key changes what training or sampling does,
and bad values are one-line errors naming the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import ConfigError
from aigc_core.store.config import build_params
from aigc_gan.augment import augment
from aigc_gan.model import DCGAN
from aigc_gan.training import DCGANTraining
from aigc_core.testing import generate


def make(shape=(1, 16, 16), classes=10, **params):
    return DCGAN(build_params(DCGAN.Params, {"size": "debug", **params}, "generator"),
                 {"shape": list(shape), "num_classes": classes})


def trainable(**params):
    """The generator wrapped in the LightningModule that trains it (discriminator, losses)."""
    return DCGANTraining(make(**params))


def train_steps(model, steps=2, n=8, seed=0):
    import pytorch_lightning as pl

    torch.manual_seed(seed)
    x = torch.rand(n, 1, 16, 16)
    y = torch.randint(0, 10, (n,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=n)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@pytest.mark.parametrize("key, value, message", [
    ("loss", "wasserstein", r"^generator\.loss: expected one of 'non-saturating', 'hinge', got 'wasserstein'$"),
    ("r1_gamma", -1.0, r"^generator\.r1_gamma: must be 0 or more$"),
    ("r1_every", 0, r"^generator\.r1_every: must be at least 1$"),
    ("augment", "translation,blur", r"^generator\.augment: unknown augmentation 'blur'"),
])
def test_bad_training_options_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_params(DCGAN.Params, {key: value}, "generator")


@pytest.mark.parametrize("value", [0.0, -0.5, 1.5])
def test_truncation_outside_unit_interval_names_the_key(value):
    with pytest.raises(ConfigError, match=r"^generate\.truncation: must be in \(0, 1\]$"):
        build_params(DCGAN.GenerateOptions, {"truncation": value}, "generate")


def test_hinge_and_non_saturating_losses_differ_as_defined():
    model = trainable(loss="hinge")
    d_real, d_fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert float(model.d_loss(d_real, d_fake)) == pytest.approx((0.0 + 0.5) / 2 + (0.0 + 1.0) / 2)
    assert float(model.g_loss(d_fake)) == pytest.approx(1.0)
    ns = trainable()
    assert float(ns.g_loss(d_fake)) == pytest.approx(float(torch.nn.functional.softplus(-d_fake).mean()))
    logs = train_steps(trainable(loss="hinge", conditional=True))
    assert np.isfinite(logs["loss_d"]) and np.isfinite(logs["loss_g"])


def test_r1_penalty_is_computed_and_changes_the_discriminator_update():
    logs = train_steps(trainable(r1_gamma=10.0))
    assert logs["r1"] > 0
    a, b = trainable(r1_gamma=10.0), trainable()
    train_steps(a, steps=1), train_steps(b, steps=1)
    assert not all(torch.equal(p, q) for p, q in zip(a.D.parameters(), b.D.parameters()))
    assert "r1" not in train_steps(trainable())


def test_augmentation_is_differentiable_random_per_sample_and_shape_keeping():
    x = (torch.rand(6, 3, 16, 16) * 2 - 1).requires_grad_(True)
    torch.manual_seed(0)
    out = augment(x, ["translation", "cutout", "color"])
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(1)
    same = torch.zeros(6, 1, 16, 16).index_fill_(2, torch.tensor([4]), 1.0)  # one bright row
    shifted = augment(same, ["translation"])
    rows = shifted[:, 0].argmax(1)[:, 0]
    assert len(set(rows.tolist())) > 1, "each sample draws its own shift"
    cut = augment(torch.ones(4, 1, 16, 16), ["cutout"])
    assert torch.allclose((cut == 0).float().mean((1, 2, 3)), torch.full((4,), 0.25))


def test_augmentation_reaches_the_discriminator_in_training():
    model = trainable(augment="translation,cutout,color")
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert not torch.equal(model.d_view(x), x)
    assert torch.equal(trainable().d_view(x), x)
    logs = train_steps(trainable(augment="translation,cutout,color", conditional=True))
    assert np.isfinite(logs["loss_d"])


def test_two_time_scale_learning_rates_reach_the_optimisers():
    opt_g, opt_d = trainable(lr_g=1e-4, lr_d=4e-4).configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4


def test_truncation_shrinks_the_spread_and_keeps_seeding():
    model = make(conditional=True)
    full = np.stack([i.data for i in generate(model, 20, seed=3, label=2)])
    low = np.stack([i.data for i in generate(model, 20, seed=3, label=2, truncation=0.2)])
    assert low.std(0).mean() < 0.6 * full.std(0).mean()
    again = np.stack([i.data for i in generate(model, 20, seed=3, label=2, truncation=0.2)])
    assert np.array_equal(low, again)


def test_class_norm_puts_per_class_gain_and_shift_in_every_generator_norm():
    from aigc_gan.model import ClassBatchNorm

    model = make(conditional=True, class_norm=True)
    norms = [m for m in model.G.modules() if isinstance(m, ClassBatchNorm)]
    assert len(norms) == 2  # a 16-pixel generator: the projection and the 4-to-8 stage (the last stage has none)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.affine for m in model.G.modules())
    # one class's shift moves only that class's images: the label reaches the layer
    model.G.eval()
    z = torch.randn(4, model.params.latent)
    y = torch.tensor([0, 0, 1, 1])
    before = model.G(z, y)
    with torch.no_grad():
        norms[-1].shift.weight[1] += 1.0
    after = model.G(z, y)
    assert torch.equal(before[:2], after[:2]) and not torch.allclose(before[2:], after[2:])
    logs = train_steps(DCGANTraining(model))
    assert np.isfinite(logs["loss_d"]) and np.isfinite(logs["loss_g"])
    # unconditional models have no class to look up: plain batch norm, as before
    assert not any(isinstance(m, ClassBatchNorm) for m in make(class_norm=True).G.modules())
    # the sampling artifact carries the class tables and loads into a fresh model
    fresh = make(conditional=True, class_norm=True)
    fresh.load_artifact_state(model.artifact_state())
    assert torch.equal(fresh.G.project[1].gain.weight, model.G_ema.project[1].gain.weight)
