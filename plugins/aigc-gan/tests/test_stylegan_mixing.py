"""Style mixing and interpolation on a generator whose samples are digits, with a classifier
saying which digit each picture shows: the labels are measured, not assumed.

A GAN trained to draw digits takes minutes; here a tiny ``stylegan`` (debug size, 16x16) is fitted
in a few seconds to draw a given digit for each of 20 samples (samples 0-9 of seed A show digits
0-9, the same samples of seed B other digits), through its real mapping network, its real noise
and ``generate``. A small classifier trained on scikit-learn's digits (offline) then labels what
``generate`` makes with ``mix=`` and ``interpolate=``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from aigc_core.store.config import build_params
from aigc_gan.stylegan import StyleGAN
from aigc_core.testing import generate

SEED_A, SEED_B, N = 1, 2, 10
#: layers 0-3 of a 16x16 generator (depth 6) are its 4x4 and 8x8 resolutions and the 8x8 RGB output
COARSE = 4


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    return F.interpolate(x, size=16, mode="bilinear", align_corners=False), torch.tensor(data.target)


def images(content) -> torch.Tensor:
    return torch.from_numpy(np.stack([i.data for i in content.items if i.meta.get("kind") != "grid"]))


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    x, y = digits()
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(classifier.parameters(), 0.05)
    for _ in range(100):
        loss = F.cross_entropy(classifier(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    classifier.requires_grad_(False)
    model = StyleGAN(build_params(StyleGAN.Params, {"size": "debug"}, "generator"),
                     {"shape": [1, 16, 16], "num_classes": 0})
    first = [int((y == digit).nonzero()[0]) for digit in range(10)]
    z_a, noise_a = model.draw(SEED_A, list(range(N)))
    z_b, noise_b = model.draw(SEED_B, list(range(N)))
    z = torch.cat([z_a, z_b])
    noise = [torch.cat(pair) for pair in zip(noise_a, noise_b)]
    target = x[[first[i] for i in range(N)] + [first[(i + 3) % 10] for i in range(N)]] * 2 - 1
    G = model.G.requires_grad_(True)
    opt = torch.optim.Adam(G.parameters(), 1e-2, betas=(0.0, 0.99))
    for _ in range(200):
        loss = (G(z, noise=noise) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    G.requires_grad_(False)
    return model, lambda content: classifier(images(content)).argmax(1)


def test_coarse_layers_from_seed_a_and_fine_from_seed_b_keep_a_s_digit(fitted):
    model, label = fitted
    a, b = generate(model, N, seed=SEED_A), generate(model, N, seed=SEED_B)
    label_a, label_b = label(a), label(b)
    assert (label_a == torch.arange(N)).float().mean() >= 0.8, f"the fit draws (mostly) digits 0-9 for seed A: {label_a.tolist()}"
    differ = label_a != label_b
    assert differ.sum() >= 8
    mixed = generate(model, N, seed=SEED_A, mix=SEED_B, mix_layer=COARSE)
    label_mix = label(mixed)
    follows_a = float((label_mix == label_a)[differ].float().mean())
    follows_b = float((label_mix == label_b)[differ].float().mean())
    assert follows_a >= 0.8 and follows_b <= 0.1, f"labels {label_mix.tolist()}: A {label_a.tolist()}, B {label_b.tolist()}"
    # and the fine layers did come from B: the mix is not simply A's picture
    assert (images(mixed) - images(a)).abs().mean() > 0.1 * (images(b) - images(a)).abs().mean()
    # the other way round, the label follows the other seed: it is the coarse layers that decide
    label_back = label(generate(model, N, seed=SEED_B, mix=SEED_A, mix_layer=COARSE))
    assert float((label_back == label_b)[differ].float().mean()) >= 0.8


def test_interpolation_frames_change_smoothly_between_two_digits(fitted):
    model, label = fitted
    frames = 12
    content = generate(model, N, seed=SEED_A, interpolate=SEED_B, frames=frames)
    walks = images(content).reshape(N, frames, -1)
    steps = (walks[:, 1:] - walks[:, :-1]).norm(dim=2)
    ends = (walks[:, -1] - walks[:, 0]).norm(dim=1)
    # an even walk moves 1/11 of the way per frame; none may jump (frames lost or repeated)
    assert (steps.max(1).values < 0.3 * ends).all(), f"largest steps / ends: {(steps.max(1).values / ends).tolist()}"
    labels = label(content).reshape(N, frames)
    assert (labels[:, 0] == label(generate(model, N, seed=SEED_A))).all()
    assert (labels[:, -1] == label(generate(model, N, seed=SEED_B))).all(), "the walk ends at seed B's samples"
