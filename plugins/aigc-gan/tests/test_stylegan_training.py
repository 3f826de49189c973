"""StyleGANTraining on its own: the losses and regularisers as defined, each reaching the update."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from aigc_core.store.config import build_params
from aigc_gan.stylegan import StyleGAN
from aigc_gan.stylegan_training import (StyleGANTraining, d_logistic_loss, g_nonsaturating_loss,
                                        mode_seeking_penalty, path_length_penalty, r1_penalty)


def make(classes=10, **params) -> StyleGANTraining:
    torch.manual_seed(0)
    generator = StyleGAN(build_params(StyleGAN.Params, {"size": "debug", **params}, "generator"),
                         {"shape": [1, 16, 16], "num_classes": classes})
    return StyleGANTraining(generator)


def train_steps(module, steps=2, n=8, seed=0):
    import pytorch_lightning as pl

    torch.manual_seed(seed)
    x = torch.rand(n, 1, 16, 16)
    y = torch.randint(0, 10, (n,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=n)
    trainer = pl.Trainer(max_steps=2 * steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_losses_are_the_logistic_ones():
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    assert float(d_logistic_loss(d_real, d_fake)) == pytest.approx(
        float(F.softplus(d_fake).mean() + F.softplus(-d_real).mean()))
    assert float(g_nonsaturating_loss(d_fake)) == pytest.approx(float(F.softplus(-d_fake).mean()))


def test_r1_is_the_squared_gradient_norm_at_the_real_images():
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    d = (x * 2.0).flatten(1).sum(1)  # gradient 2 everywhere: squared norm 4 * 16 per image
    assert float(r1_penalty(d, x)) == pytest.approx(64.0)


def test_one_training_step_moves_g_d_and_the_ema_and_logs_p():
    module = make(conditional=True)
    g, d, ema = ([p.detach().clone() for p in m.parameters()] for m in (module.G, module.D, module.generator.G))
    logs = train_steps(module)
    assert any(not torch.equal(a, b) for a, b in zip(g, module.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d, module.D.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(ema, module.generator.G.parameters())), "the sampling copy follows"
    assert all(np.isfinite(logs[k]) for k in ("loss_d", "loss_g", "ada_p", "r1"))
    assert not any(p.requires_grad for p in module.generator.G.parameters()), "the EMA copy is never trained"


def test_r1_changes_the_discriminator_update():
    a, b = make(r1_gamma=10.0, r1_every=1), make(r1_gamma=0.0)
    assert "r1" in train_steps(a, steps=1) and "r1" not in train_steps(b, steps=1)
    assert not all(torch.equal(p, q) for p, q in zip(a.D.parameters(), b.D.parameters()))


def test_style_mixing_regularisation_draws_two_styles_per_batch():
    module = make(classes=0, mix_prob=1.0)
    torch.manual_seed(0)
    ws = module.sample_ws(4, None)
    per_layer = (ws[:, 1:] - ws[:, :-1]).abs().sum((0, 2))
    assert (per_layer > 0).sum() == 1, "one crossover: w changes between exactly one pair of layers"
    plain = make(classes=0, mix_prob=0.0).sample_ws(4, None)
    assert torch.equal(plain, plain[:, :1].expand_as(plain))


def test_path_length_regulariser_penalises_uneven_lengths_and_tracks_their_mean():
    ws = torch.randn(4, 3, 5, requires_grad=True)
    scale = torch.tensor([1.0, 1.0, 3.0, 3.0])[:, None, None, None]
    images = (ws.sum(2, keepdim=True)[..., None] * scale).expand(-1, -1, 4, 4)  # some samples move 3x faster
    pl_mean = torch.zeros(())
    penalty, length = path_length_penalty(images, ws, pl_mean, decay=1.0)
    assert float(pl_mean) == pytest.approx(float(length)) and float(penalty) > 0
    with_pl, without = make(pl_weight=2.0, pl_every=1), make()
    logs = train_steps(with_pl, steps=1)
    train_steps(without, steps=1)
    assert logs["pl"] > 0 and logs["pl_length"] > 0
    assert not all(torch.equal(p, q) for p, q in zip(with_pl.G.parameters(), without.G.parameters())), \
        "the penalty reaches the generator's update"


def test_mode_seeking_penalty_falls_as_paired_images_differ_more():
    ws = torch.randn(4, 3, 5)
    same = torch.zeros(4, 1, 4, 4)
    apart = torch.cat([torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)])
    assert float(mode_seeking_penalty(apart, ws)[0]) < float(mode_seeking_penalty(same, ws)[0]) / 100
    logs = train_steps(make(diversity_weight=1.0, conditional=True))
    assert logs["image_per_style_distance"] > 0


def test_the_checkpointed_state_holds_d_the_live_g_and_p():
    keys = set(make().state_dict())
    assert {"ada.p", "ada.sign_sum", "ada.seen", "pl_mean"} <= keys
    assert any(k.startswith("D.") for k in keys) and any(k.startswith("G.synthesis") for k in keys)
    assert any(k.startswith("generator.G.") for k in keys)


def test_the_discriminator_learns_several_times_faster_than_the_generator_by_default():
    """Issue 25's collapse (one picture per label after a few hundred steps) came from an equalised-lr
    discriminator at the generator's 0.0025: it followed G too slowly. Measured with grids of short
    MNIST runs (docs/benchmarks.md, "Style-based GAN"): 0.0025 and 0.005 collapse, 0.01 and 0.02 do not;
    a behavioural check takes minutes of training, so here the defaults, the optimisers built from
    them and both configs are held to it."""
    from omegaconf import OmegaConf

    module = make()
    opt_g, opt_d = module.configure_optimizers()
    lr_g, lr_d = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
    assert lr_d >= 4 * lr_g, f"D's step {lr_d:g} is not >= 4x G's {lr_g:g}"
    root = Path(__file__).resolve().parents[3]
    for config in ("stylegan-mnist.yaml", "stylegan-digits-small.yaml"):
        generator = OmegaConf.to_container(OmegaConf.load(root / "configs" / config).generator)
        params = build_params(StyleGAN.Params, {k: v for k, v in generator.items() if k != "name"}, "generator")
        assert params.lr_d >= 4 * params.lr_g, config


def test_mode_seeking_is_on_by_default_and_in_both_configs():
    """Issue 25's later collapse: with lr_d fixed, the samples of a label still drifted to one
    picture over ~1,000 iterations at 32x32 (intra-class diversity 0.68 -> 0.41 of the real one by
    750 iterations, bench/stylegan_trace.py); with mode seeking it held at ~0.7. Minutes of training
    show it, so here the defaults are held to it: the generator's loss gets the term (its ratio is
    logged) without anyone asking, and neither config turns it off."""
    from omegaconf import OmegaConf

    assert StyleGAN.Params().diversity_weight > 0
    logs = train_steps(make(conditional=True))
    assert "image_per_style_distance" in logs, "the default training step has no mode-seeking term"
    root = Path(__file__).resolve().parents[3]
    for config in ("stylegan-mnist.yaml", "stylegan-digits-small.yaml"):
        generator = OmegaConf.to_container(OmegaConf.load(root / "configs" / config).generator)
        params = build_params(StyleGAN.Params, {k: v for k, v in generator.items() if k != "name"}, "generator")
        assert params.diversity_weight > 0, config
