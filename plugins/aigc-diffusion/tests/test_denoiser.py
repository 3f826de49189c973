"""The public denoiser and training modules on their own: what other plugins (aigc-audio's
mel-diffusion) rely on."""

from __future__ import annotations

import pytest
import torch

from aigc_core import ConfigError
from aigc_diffusion import denoiser, training


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


@pytest.mark.parametrize("film", [False, True])
def test_the_class_embedding_is_not_drowned_by_the_time_embedding_at_init(film):
    """A class embedding initialised too small (the GAN's old bug) leaves the label nearly no
    say from the first step on; at diffusers' init a label swap moves the output several times
    more than a time step of 500 -> 900 (5x to 10x over seeds), a 100x smaller embedding 0.07x
    to 0.19x."""
    torch.manual_seed(0)
    net = denoiser.build_unet((1, 16, 16), (16, 32), 1, False, num_classes=10, film=film)
    x, label = torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        def out(t: int, y: torch.Tensor) -> torch.Tensor:
            return net(x, torch.full((8,), t), class_labels=y).sample

        by_label = (out(500, label + 3) - out(500, label)).pow(2).mean().sqrt()
        by_time = (out(900, label) - out(500, label)).pow(2).mean().sqrt()
    assert by_label > 2 * by_time, (float(by_label), float(by_time))


def test_film_scales_and_shifts_the_normalised_features():
    plain = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2)
    film = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2, film=True)
    # a scale and a shift per channel from the embedding: twice the projection's outputs
    assert film.down_blocks[0].resnets[0].time_emb_proj.out_features == 32
    assert plain.down_blocks[0].resnets[0].time_emb_proj.out_features == 16


def test_patches_fold_neighbouring_pixels_into_channels():
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=0, patch=2)
    assert net.unet.config.in_channels == 4 and tuple(net.unet.config.sample_size) == (4, 4)


def test_loss_is_seeded_and_label_dropout_draws_from_the_same_generator():
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2)
    schedule = denoiser.noise_schedule(100, "squaredcos_cap_v2", "epsilon")
    x, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        a = training.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(1), drop=0.5)
        b = training.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(1), drop=0.5)
        c = training.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(2), drop=0.5)
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


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_min_snr_weight_is_min_snr_gamma_in_the_units_of_the_target(prediction):
    schedule = denoiser.noise_schedule(1000, "squaredcos_cap_v2", prediction)
    t = torch.arange(1000)
    weight = training.snr_weight(schedule, t, 5.0).double()
    alpha_bar = schedule.alphas_cumprod.double()
    snr = alpha_bar / (1 - alpha_bar)
    expected = snr.clamp(max=5.0) / (snr if prediction == "epsilon" else snr + 1)
    assert torch.isfinite(weight).all()
    assert torch.allclose(weight, expected, rtol=1e-4, atol=1e-7)
    # nearly clean levels (huge SNR) count far less than noisy ones
    assert weight[0] < 0.01 * weight.max()


def test_min_snr_loss_weights_each_sample_and_a_huge_gamma_is_the_plain_loss():
    torch.manual_seed(0)
    net = denoiser.build_unet((1, 8, 8), (16, 32), 1, False, num_classes=2)
    schedule = denoiser.noise_schedule(100, "squaredcos_cap_v2", "epsilon")
    x, y = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 2

    def loss(gamma):
        with torch.no_grad():
            return float(training.denoising_loss(net, schedule, x, y, 2, generator=torch.Generator().manual_seed(3),
                                                 snr_gamma=gamma))

    plain, huge, weighted = loss(None), loss(1e12), loss(5.0)
    assert huge == pytest.approx(plain, rel=1e-5)
    # epsilon weights are at most 1 and well below it for the clean levels some samples drew
    assert weighted < 0.95 * plain
