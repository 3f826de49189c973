"""The public denoiser module on its own: what other plugins (aigc-audio's mel-diffusion) rely on."""

from __future__ import annotations

import pytest
import torch

from aigc_core import ConfigError
from aigc_diffusion import denoiser


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_unet_of_any_patch_maps_a_shape_to_itself_and_learns_labels(patch):
    shape = (1, 16, 8)
    torch.manual_seed(0)
    net = denoiser.build_unet(shape, (16, 32), 1, False, num_classes=3, patch=patch)
    x = torch.randn(2, *shape)
    out = net(x, torch.tensor([5, 500]), class_labels=torch.tensor([0, 3])).sample
    assert out.shape == x.shape
    # the null class (3) and a real class give different outputs: labels reach the net
    other = net(x, torch.tensor([5, 500]), class_labels=torch.tensor([1, 2])).sample
    assert not torch.allclose(out, other)
    assert denoiser.side_multiple(2, patch) == 2 * patch


def test_patches_fold_neighbouring_pixels_into_channels():
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=0, patch=2)
    assert net.unet.config.in_channels == 4 and tuple(net.unet.config.sample_size) == (4, 4)


def test_loss_is_seeded_and_label_dropout_draws_from_the_same_generator():
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2)
    schedule = denoiser.noise_schedule(100, "squaredcos_cap_v2", "epsilon")
    x, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        a = denoiser.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(1), drop=0.5)
        b = denoiser.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(1), drop=0.5)
        c = denoiser.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(2), drop=0.5)
    assert a == b and a != c


def test_sampling_chunks_are_aligned_and_a_sample_depends_on_its_index_alone():
    torch.manual_seed(0)
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2).eval()
    schedule = denoiser.noise_schedule(100, "squaredcos_cap_v2", "epsilon")

    def run(start, n):
        return {lo + j: x[j] for lo, x, _ in denoiser.sample_chunks(
            net, schedule, (1, 8, 8), 3, start, n, 4, "ddim", 3, 2.0, lambda i: i % 2, 2, progress=lambda *a: None)
            for j in range(4)}

    assert denoiser.chunk_starts(5, 6, 4) == [4, 8]
    many, one = run(0, 8), run(6, 1)
    assert torch.equal(many[6], one[6]) and not torch.equal(many[6], many[7])
    assert many[0].abs().max() <= 1.0


def test_sampler_errors_name_the_generate_key():
    schedule = denoiser.noise_schedule(10, "linear", "epsilon")
    with pytest.raises(ConfigError, match=r"^generate\.scheduler: unknown scheduler 'fast'"):
        denoiser.make_sampler(schedule, "fast", 2)
    with pytest.raises(ConfigError, match=r"^generate\.num_inference_steps: at most num_train_timesteps \(10\)"):
        denoiser.make_sampler(schedule, "ddim", 11)
