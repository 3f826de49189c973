"""The style-based networks on their own (plain torch, tiny sizes): each test names the property
it guards, and fails when that property is taken out of the network."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from aigc_gan.stylegan_net import (SIZES, Discriminator, MinibatchStd, ModulatedConv2d, StyleGenerator,
                                   interpolate_styles, mix_styles, num_ws, project, truncate)

DEBUG = SIZES["debug"]


def make(size=16, channels=1, classes=0, seed=0) -> StyleGenerator:
    torch.manual_seed(seed)
    return StyleGenerator(channels, size, DEBUG, classes).eval()


def with_noise_strength(G: StyleGenerator, value: float) -> StyleGenerator:
    with torch.no_grad():
        for layer in G.synthesis.layers:
            layer.noise.strength.fill_(value)
    return G


@pytest.mark.parametrize("size, channels", [(8, 1), (16, 3), (32, 1), (64, 3)])
def test_shapes_and_depth_follow_the_size(size, channels):
    G = make(size, channels)
    assert G.num_ws == num_ws(size) == 2 * {8: 2, 16: 3, 32: 4, 64: 5}[size]
    out = G(torch.randn(2, DEBUG.z_dim))
    assert out.shape == (2, channels, size, size) and torch.isfinite(out).all()
    D = Discriminator(channels, size, DEBUG)
    assert D(out).shape == (2,)


def test_noise_inputs_reach_the_image_scaled_by_learnt_strengths():
    G = with_noise_strength(make(), 0.5)
    ws = G.broadcast(G.styles(torch.randn(1, DEBUG.z_dim)))
    a = G.synthesis(ws, G.synthesis.random_noise(1, torch.Generator().manual_seed(1)))
    b = G.synthesis(ws, G.synthesis.random_noise(1, torch.Generator().manual_seed(2)))
    assert (a - b).abs().mean() > 1e-3, "different noise, same style: the image must change in its detail"
    # ... and its effect is the strength's: at 0 the noise maps are ignored
    with_noise_strength(G, 0.0)
    assert torch.allclose(G.synthesis(ws, G.synthesis.random_noise(1, torch.Generator().manual_seed(1))),
                          G.synthesis(ws, G.synthesis.random_noise(1, torch.Generator().manual_seed(2))))
    # the strengths are parameters the loss reaches (they start at 0, so this is how they grow)
    G.train()
    G.synthesis(ws, G.synthesis.random_noise(1)).square().sum().backward()
    grads = [layer.noise.strength.grad for layer in G.synthesis.layers]
    assert all(g is not None and g.abs() > 0 for g in grads)


def test_the_mapping_network_makes_w_from_z():
    G = make(classes=10)
    z = torch.randn(4, DEBUG.z_dim)
    y = torch.tensor([0, 1, 2, 3])
    before = G(z, y, noise=G.synthesis.random_noise(4, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        G.mapping.layers[0].weight.mul_(-1.0)
    after = G(z, y, noise=G.synthesis.random_noise(4, torch.Generator().manual_seed(0)))
    assert (before - after).abs().mean() > 1e-3, "the image must depend on the mapping network's weights"
    # the class reaches w through the mapping: same z, two labels, two styles
    w = G.styles(z[:1].repeat(2, 1), torch.tensor([0, 5]))
    assert not torch.allclose(w[0], w[1])


def test_truncation_pulls_w_toward_the_tracked_average_of_its_class():
    G = make(classes=3)
    z = torch.randn(64, DEBUG.z_dim)
    y = torch.arange(64) % 3
    G.mapping.track(G.mapping(z, y), y, beta=0.0)  # the average of this batch, per class
    w = G.styles(z, y, psi=1.0)
    half = G.styles(z, y, psi=0.5)
    centre = G.mapping.w_avg[y]
    assert torch.allclose(half, centre + 0.5 * (w - centre), atol=1e-6)
    assert (half - centre).norm(dim=1).mean() < 0.6 * (w - centre).norm(dim=1).mean()
    assert torch.allclose(truncate(G.broadcast(w), centre, 0.5)[:, 3], half, atol=1e-6)


def test_modulation_is_per_sample_and_demodulation_normalises_the_weights():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 6, 3, w_dim=8)
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 8)
    out = conv(x, w)
    styles = conv.affine(w)
    for i in range(2):  # the reference: per-sample weights, modulated then divided by their norm
        weight = conv.weight * conv.scale * styles[i][None, :, None, None]
        weight = weight / (weight.square().sum((1, 2, 3), keepdim=True) + 1e-8).sqrt()
        assert torch.allclose(out[i:i + 1], F.conv2d(x[i:i + 1], weight, padding=1), atol=1e-5)


def test_mixing_takes_coarse_layers_from_a_and_fine_from_b():
    G = make(32)
    depth = G.num_ws
    w_a, w_b = G.styles(torch.randn(1, DEBUG.z_dim)), G.styles(torch.randn(1, DEBUG.z_dim))
    ws = mix_styles(w_a, w_b, 3, depth)
    assert torch.equal(ws[0, :3], w_a.expand(3, -1)) and torch.equal(ws[0, 3:], w_b.expand(depth - 3, -1))
    with pytest.raises(ValueError, match=r"crossover layer must be in \[1, 7\], got 8"):
        mix_styles(w_a, w_b, depth, depth)
    # the picture: at a coarse crossover the mix keeps A's large-scale structure (4x4 average
    # pooling, what pose and shape are at 32x32) and is far from B's
    noise = G.synthesis.random_noise(1, torch.Generator().manual_seed(3))
    a, b = G.synthesis(G.broadcast(w_a), noise), G.synthesis(G.broadcast(w_b), noise)
    mixed = G.synthesis(mix_styles(w_a, w_b, 4, depth), noise)
    coarse = lambda t: F.avg_pool2d(t, 8)  # noqa: E731
    assert (coarse(mixed) - coarse(a)).norm() < 0.5 * (coarse(mixed) - coarse(b)).norm()
    # and the fine layers do come from B: the mix is not simply A
    assert (mixed - a).abs().mean() > 1e-3


def test_interpolation_frames_change_smoothly():
    G = make(32)
    w_a, w_b = G.styles(torch.randn(2, DEBUG.z_dim)).unbind(0)
    path = interpolate_styles(w_a, w_b, 17)
    assert torch.equal(path[0], w_a) and torch.allclose(path[-1], w_b)
    noise = [n.expand(17, -1, -1, -1) for n in G.synthesis.random_noise(1, torch.Generator().manual_seed(0))]
    frames = G.synthesis(G.broadcast(path), noise).flatten(1)
    steps = (frames[1:] - frames[:-1]).norm(dim=1)
    ends = (frames[-1] - frames[0]).norm()
    # a walk of 16 steps: each step a small share of the way, none a jump
    assert steps.max() < 0.25 * ends, f"largest step {steps.max():.3f} of an end-to-end distance {ends:.3f}"
    assert steps.max() < 3 * steps.median()


def test_minibatch_std_shows_the_batch_spread():
    same = torch.randn(1, 3, 4, 4).expand(4, -1, -1, -1)
    assert MinibatchStd(4)(same)[:, -1].abs().max() < 1e-3
    varied = torch.randn(4, 3, 4, 4)
    assert MinibatchStd(4)(varied)[:, -1].mean() > 0.3


def test_minibatch_std_of_a_conditional_discriminator_is_taken_within_each_class():
    """One picture per class is a collapse too: the spread across classes must not hide it."""
    one_per_class = torch.randn(2, 3, 4, 4).repeat_interleave(4, 0)  # classes 0, 0, 0, 0, 1, 1, 1, 1
    labels = torch.tensor([0] * 4 + [1] * 4)
    assert MinibatchStd(4)(one_per_class)[:, -1].mean() > 0.3, "groups of mixed classes see spread"
    assert MinibatchStd(4)(one_per_class, labels)[:, -1].abs().max() < 1e-3
    varied = torch.randn(8, 3, 4, 4)
    assert MinibatchStd(4)(varied, labels)[:, -1].min() > 0.3
    torch.manual_seed(0)
    D = Discriminator(3, 8, DEBUG, num_classes=2)
    seen = []
    D.mbstd.register_forward_hook(lambda mod, args, out: seen.append(out[:, -1].abs().max()))
    D(torch.randn(2, 3, 8, 8).repeat_interleave(4, 0), labels)
    assert float(seen[0]) < 1e-3, "the conditional D groups by label"


def test_conditional_discriminator_uses_the_label():
    torch.manual_seed(0)
    D = Discriminator(1, 16, DEBUG, num_classes=10)
    x = torch.randn(2, 1, 16, 16)
    assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([3, 3])))


def test_projection_finds_an_image_the_generator_can_make():
    G = make(16)
    noise = [torch.zeros(1, *s) for s in G.synthesis.noise_shapes()]
    w_true = G.styles(torch.randn(1, DEBUG.z_dim))
    target = G.synthesis(G.broadcast(w_true), noise).detach()
    start = G.mapping(torch.randn(256, DEBUG.z_dim)).mean(0, keepdim=True).detach()
    start_error = (G.synthesis(G.broadcast(start), noise) - target).square().mean()
    ws, error = project(G, target, start, steps=150, lr=0.1, noise=noise)
    assert ws.shape == (1, G.num_ws, DEBUG.w_dim)
    assert float(error[0]) < 0.1 * float(start_error), f"error {float(error[0]):.4f} from {float(start_error):.4f}"
    assert all(p.requires_grad for p in G.parameters()), "projection gives the generator back as it found it"
