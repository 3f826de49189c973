"""The VAE's science and its own API, in process, without training (untrained weights suffice)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aigc_core import Cancelled, ConfigError, UsageError, cancellation
from aigc_core.testing import CancelAfter
from aigc_core.store.config import build_params
from aigc_vae import likelihoods as lk
from aigc_vae.model import VAE, VAEOptions, VAEParams, fixed_binarize
from aigc_core.testing import generate


def make(shape=(1, 8, 8), num_classes=10, **params) -> VAE:
    torch.manual_seed(0)
    p = build_params(VAEParams, {"size": "debug", **params}, "generator")
    return VAE(p, {"modality": "image", "shape": list(shape), "num_classes": num_classes}).eval()


@pytest.mark.parametrize("shape,channels", [((1, 8, 8), [8, 16]), ((1, 28, 28), [4, 4, 4]),
                                             ((3, 12, 10), [4, 8]), ((1, 5, 7), [4])])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous-bernoulli"])
def test_decoder_lands_on_the_data_shape_for_any_size(shape, channels, likelihood):
    model = make(shape, channels=channels, likelihood=likelihood)
    x = torch.rand(3, *shape)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 4)
    assert model.decode(mu).shape == (3, *shape)
    assert model.reconstruct(x).min() >= 0 and model.reconstruct(x).max() <= 1
    rec, kl = model.elbo_terms(x)
    assert torch.isfinite(rec).all() and (kl >= 0).all()


def test_continuous_bernoulli_normaliser_integrates_to_one():
    logits = torch.tensor([-8.0, -1.5, -1e-4, 0.0, 3e-4, 0.7, 5.0], dtype=torch.float64)
    xs = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for logit in logits:
        density = torch.exp(lk.bernoulli_log_prob(logit.expand(len(xs), 1), xs[:, None])
                            + lk.cb_log_norm(logit))
        assert torch.trapezoid(density, xs).item() == pytest.approx(1.0, abs=1e-4)
        mean = torch.trapezoid(density * xs, xs).item()
        assert lk.cb_mean(logit).item() == pytest.approx(mean, abs=1e-4)


def test_importance_sampling_tightens_the_elbo():
    model = make(likelihood="bernoulli", binarize="threshold")
    x = model.prepare(torch.rand(16, 1, 8, 8), train=False)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        rec, kl = model.elbo_terms(x.repeat(20, 1, 1, 1), generator=g)
        elbo = (rec - kl).mean()
        ll_1 = model.log_likelihood(x, k=1, generator=g, chunk=5)
        ll_64 = model.log_likelihood(x, k=64, generator=g)
    assert ll_1.shape == ll_64.shape == (16,)
    assert ll_64.mean() > elbo  # log p(x) >= IWAE bound(k) >= ELBO
    assert ll_1.mean().item() == pytest.approx(elbo.item(), rel=0.05)


def test_samples_depend_on_seed_and_index_only():
    model = make()
    together = generate(model, 6, seed=3, batch_size=4)
    again = generate(model, 7, seed=3, batch_size=4)
    alone = generate(model, 1, seed=3, start=4, batch_size=4)
    other = generate(model, 6, seed=4)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(together, again))
    assert np.array_equal(together.items[4].data, alone.items[0].data)
    assert not np.array_equal(together.items[0].data, other.items[0].data)
    assert together.items[0].data.dtype == np.float32 and together.items[0].data.shape == (1, 8, 8)


def test_interpolation_runs_between_the_two_reconstructions():
    model = make(shape=(1, 12, 12))
    a, b = np.random.rand(1, 12, 12).astype(np.float32), np.random.rand(1, 12, 12).astype(np.float32)
    path = model.interpolate(a, b, steps=5)
    assert path.shape == (5, 1, 12, 12)
    torch.testing.assert_close(path[0], model.reconstruct(a)[0])
    torch.testing.assert_close(path[-1], model.reconstruct(b)[0])
    with pytest.raises(UsageError, match=r"image b: shape 3x12x12, but this model takes 1x12x12"):
        model.interpolate(a, np.zeros((3, 12, 12), np.float32), steps=5)


def test_traversal_moves_one_latent_dimension():
    model = make()
    seen = []
    model.decoder.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    images = model.traverse(2, steps=4, span=2.0, base=torch.ones(4))
    assert images.shape == (4, 1, 8, 8)
    z = seen[-1]
    torch.testing.assert_close(z[:, 2], torch.tensor([-2.0, -2 / 3, 2 / 3, 2.0]))
    assert (z[:, [0, 1, 3]] == 1).all()
    with pytest.raises(ConfigError, match="generate.dim: latent dimension 4 does not exist"):
        model.traverse(4)


def test_grid_modes_return_frames_and_one_grid():
    model = make()
    content = generate(model, 2, seed=0, mode="traversal", steps=3, dim=1)
    assert len(content) == 2 * 3 + 1
    assert content.items[-1].meta["kind"] == "grid" and content.items[-1].data.shape[0] == 1
    assert [i.meta["row"] for i in content.items[:-1]] == [0, 0, 0, 1, 1, 1]


def test_conditional_model_cycles_classes_and_refuses_unknown_labels():
    model = make(conditional=True)
    content = generate(model, 12, seed=0)
    assert [i.meta["label"] for i in content] == [i % 10 for i in range(12)]
    assert all(i.meta["label"] == 7 for i in generate(model, 3, seed=0, label=7))
    with pytest.raises(ConfigError, match="generate.label: label 10 is not a class"):
        generate(model, 1, label=10)
    with pytest.raises(ConfigError, match="generator.conditional"):
        make(conditional=True, num_classes=0)


def test_kl_warmup_ramps_beta_linearly():
    from aigc_vae.training import VAETraining

    model = VAETraining(make(beta=0.5, kl_warmup_steps=100))
    model.trainer = type("T", (), {"global_step": 25})()  # what Lightning reads global_step from
    assert model.beta_now() == pytest.approx(0.125)
    model.trainer.global_step = 1000
    assert model.beta_now() == pytest.approx(0.5)


def test_binarisation_of_held_out_images_is_fixed_by_position():
    x = torch.rand(5, 1, 8, 8)
    once, twice = fixed_binarize(x, 1, offset=3), fixed_binarize(x[1:], 1, offset=4)
    assert set(once.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(once[1:], twice)
    model = make(binarize="dynamic")
    assert torch.equal(model.prepare(x, train=False), model.prepare(x, train=False))


@pytest.mark.parametrize("values,key", [
    ({"latent_dim": 0}, "generator.latent_dim"), ({"beta": -0.1}, "generator.beta"),
    ({"beta": math.nan}, "generator.beta"), ({"channels": []}, "generator.channels"),
    ({"likelihood": "gaussian", "binarize": "dynamic"}, "generator.binarize"),
])
def test_bad_parameters_name_their_key(values, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        build_params(VAEParams, values, "generator")


def test_options_need_both_interpolation_ends():
    with pytest.raises(ConfigError, match="^generate.b: give both a and b"):
        build_params(VAEOptions, {"mode": "interpolation", "a": b"PNG bytes"}, "generate")


def test_images_too_small_for_the_depth_are_refused():
    with pytest.raises(ConfigError, match="generator.channels: 3 stride-2 levels need images of at least 8"):
        make(shape=(1, 4, 4), channels=[4, 4, 4])


class _Split:
    def __init__(self, n: int):
        self.items = [(torch.rand(1, 8, 8), i % 10) for i in range(n)]

    def split(self, name: str):
        return self.items


@pytest.mark.parametrize("mode, options", [
    ("samples", {"batch_size": 2}),           # six samples in three blocks
    ("reconstructions", {"batch_size": 2}),   # six held-out images in three blocks
    ("interpolation", {"steps": 3}),          # six rows
    ("traversal", {"steps": 3}),              # six rows
])
def test_every_mode_stops_at_its_next_cancellation_check(mode, options):
    """A server that gave up on a request (issue 29): the VAE stops at the second of its checks."""
    model = make()
    token = CancelAfter(2)
    with cancellation(token), pytest.raises(Cancelled):
        generate(model, 6, seed=0, mode=mode, data_source=_Split(6), **options)
    assert token.seen == 2
    assert len(generate(model, 6, seed=0, mode=mode, data_source=_Split(6), **options).items) >= 6  # no token: all
