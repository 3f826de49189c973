"""Adaptive discriminator augmentation: the transformations and the controller of their probability."""

from __future__ import annotations

import pytest
import torch

from aigc_gan.ada import AdaptiveAugment, augment, parse_ops


def images(n=8, c=1, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def test_p_zero_is_the_identity_and_p_one_transforms_every_sample_differently():
    x = images()
    assert augment(x, 0.0, ["blit", "geom", "color"]) is x
    torch.manual_seed(0)
    out = augment(x, 1.0, ["blit", "geom", "color", "cutout"])
    assert out.shape == x.shape
    changed = (out - x).flatten(1).abs().mean(1)
    assert (changed > 1e-3).all(), "at p = 1 every sample is transformed"
    same = images(1).expand(8, -1, -1, -1)
    torch.manual_seed(1)
    varied = augment(same, 1.0, ["geom"])
    assert torch.pdist(varied.flatten(1)).min() > 1e-3, "each sample draws its own transformation"


def test_augmentation_is_differentiable_for_every_group():
    for ops in (["blit"], ["geom"], ["color"], ["cutout"]):
        x = images().requires_grad_(True)
        torch.manual_seed(0)
        augment(x, 1.0, ops).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, ops


def test_p_sets_the_share_of_transformed_samples():
    torch.manual_seed(0)
    x = images(2000, size=8)
    out = augment(x, 0.3, ["color"])
    share = float(((out - x).flatten(1).abs().amax(1) > 1e-6).float().mean())
    # grey images get two colour transformations (brightness, contrast), each kept with p = 0.3
    assert abs(share - (1 - 0.7 ** 2)) < 0.04


def test_blit_alone_keeps_pixel_values():
    """Flips, quarter turns and whole-pixel shifts move pixels without blending them."""
    torch.manual_seed(0)
    x = images(16)
    out = augment(x, 1.0, ["blit"])
    nearest = (out.reshape(-1, 1) - x.reshape(1, -1)).abs().amin(1)  # to any input pixel value
    assert nearest.max() < 1e-5


def test_p_rises_when_d_is_sure_of_the_real_images_and_falls_when_not():
    ada = AdaptiveAugment("ada", p=0.0, target=0.6, kimg=0.5, interval=2)
    overfit = torch.full((50,), 3.0)  # D calls every real image real: r_t = 1 > 0.6
    for _ in range(4):
        ada.observe(overfit)
    # two adjustments of 100 images each, at 500 images per unit of p
    assert float(ada.p) == pytest.approx(0.4)
    assert float(ada.r_t) == pytest.approx(1.0)
    unsure = torch.tensor([1.0, -1.0] * 25)  # r_t = 0 < 0.6
    for _ in range(2):
        ada.observe(unsure)
    assert float(ada.p) == pytest.approx(0.2)
    for _ in range(20):
        ada.observe(unsure)
    assert float(ada.p) == 0.0, "p never goes below 0"
    for _ in range(200):
        ada.observe(overfit)
    assert float(ada.p) == 1.0, "nor above 1"


def test_fixed_and_off_modes_keep_p():
    fixed = AdaptiveAugment("fixed", p=0.25, kimg=0.5, interval=1)
    off = AdaptiveAugment("off", p=0.25, kimg=0.5, interval=1)
    for _ in range(5):
        fixed.observe(torch.ones(10))
        off.observe(torch.ones(10))
    assert float(fixed.p) == 0.25 and float(off.p) == 0.0
    assert float(off.r_t) == 1.0, "off still measures r_t"
    x = images()
    assert off(x) is x


def test_p_and_the_running_sums_are_state_that_a_checkpoint_restores():
    ada = AdaptiveAugment("ada", kimg=0.1, interval=3)
    for _ in range(7):
        ada.observe(torch.ones(10))
    state = ada.state_dict()
    assert {"p", "sign_sum", "seen", "steps", "r_t"} <= set(state)
    fresh = AdaptiveAugment("ada", kimg=0.1, interval=3)
    fresh.load_state_dict(state)
    assert float(fresh.p) == float(ada.p) > 0
    # the next adjustment happens where it would have: the partial sums came along
    ada.observe(torch.ones(10)), ada.observe(torch.ones(10))
    fresh.observe(torch.ones(10)), fresh.observe(torch.ones(10))
    assert float(fresh.p) == float(ada.p)


def test_unknown_transformation_group_is_named():
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        parse_ops("geom,blur")
