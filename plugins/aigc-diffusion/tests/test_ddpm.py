"""The DDPM on its own: learning, guidance, determinism, options and artifacts.

The learning tests train the debug U-Net on "bars": 8x8 images with one bright column, in the
left half for class 0 and the right half for class 1. A sample's class is read off where its
brightness sits, so class accuracy needs no trained classifier, and a model that ignores its
labels scores about one half.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import CheckpointError, ConfigError
from aigc_core.store.config import build_params
from aigc_diffusion.model import DDPM
from aigc_diffusion import denoiser
from aigc_diffusion.training import DDPMTraining
from aigc_core.testing import generate


def make(shape=(1, 8, 8), classes=2, **params):
    return DDPM(build_params(DDPM.Params, {"size": "debug", **params}, "generator"),
                {"shape": list(shape), "num_classes": classes})


def options(**values):
    return build_params(DDPM.GenerateOptions, values, "generate")


def bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    columns = torch.randint(0, 3, (n,), generator=g) + labels * 5  # class 0: columns 0-2, class 1: 5-7
    x = torch.zeros(n, 1, 8, 8)
    x[torch.arange(n), 0, :, columns] = 1.0
    return x, labels


def read_class(images: np.ndarray) -> np.ndarray:
    """0 when most brightness is in the left half, 1 when in the right half."""
    columns = images.reshape(len(images), 8, 8).sum(axis=1)
    return (columns[:, 4:].sum(1) > columns[:, :4].sum(1)).astype(int)


def fit(model, x, y, steps: int, batch_size: int = 32):
    import pytorch_lightning as pl

    from aigc_core.train.training import quiet_lightning

    quiet_lightning()
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(DDPMTraining(model), train_dataloaders=loader)
    return model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """8x8 images are too small to share among threads: on a busy 2-core machine (load 10) a
    training step cost 0.21 CPU-s with two threads, mostly threads spinning while they wait for
    each other, and 0.03 with one. So this module's cost does not grow with the machine's load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained():
    """The smallest training that shows every property below with a margin. Measured on training
    seeds 0-3 (one thread): at 100 steps the held-out loss falls to 0.07-0.08 of the untrained one,
    guidance 3 gives 1.0 class accuracy against 0.38-0.47 unguided, and label 1's samples put their
    bar in 3-4 columns; at 80 steps guided accuracy was 0.97-1.0, at 50-60 0.81-0.97 (fails the
    0.9 bound). 100 steps cost ~3 CPU-s; the 250 used before cost 9 (and 200 with two threads)."""
    x, y = bars(256, seed=0)
    return fit(make(lr=3e-3, label_dropout=0.2, ema_decay=0.99), x, y, steps=100)


def held_out_loss(model) -> float:
    x, y = bars(64, seed=1)  # images the model never trained on
    with torch.no_grad():
        return float(DDPMTraining(model).diffusion_loss(x, y, generator=torch.Generator().manual_seed(5)))


def test_loss_falls_on_a_tiny_set(trained):
    before = held_out_loss(make())
    after = held_out_loss(trained)
    assert after < 0.5 * before, (before, after)


def test_guidance_makes_samples_follow_their_class(trained):
    def accuracy(scale):
        content = generate(trained, 32, seed=3, guidance_scale=scale, num_inference_steps=20, batch_size=16)
        wanted = np.arange(32) % 2  # labels cycle with the index
        return float((read_class(np.stack([i.data for i in content])) == wanted).mean())

    unguided, conditional, guided = accuracy(0.0), accuracy(1.0), accuracy(3.0)
    assert 0.2 <= unguided <= 0.8, unguided  # the unconditional model makes both classes, ignoring labels
    assert guided >= 0.9 and guided >= unguided + 0.2, (unguided, guided)
    assert conditional >= unguided, (unguided, conditional)


def test_guidance_is_one_batched_pass_equal_to_the_two_pass_formula(trained):
    """Guidance costs one U-Net call on 2n images, not two calls: same numbers as uncond + s * (cond - uncond)."""
    calls = []
    net = trained.unet_ema
    handle = net.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        g = torch.Generator().manual_seed(0)
        x, t = torch.randn(4, 1, 8, 8, generator=g), torch.tensor(500)
        labels = torch.tensor([0, 1, 0, 1])
        with torch.no_grad():
            guided = denoiser.guided(net, x, t, labels, trained.num_classes, 3.0)
            assert calls == [8]
            cond = net(x, t, class_labels=labels).sample
            uncond = net(x, t, class_labels=torch.full_like(labels, trained.num_classes)).sample
    finally:
        handle.remove()
    assert not torch.allclose(cond, uncond, atol=1e-3)  # the labels matter, so the formula is tested
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), rtol=1e-4, atol=1e-5)


def test_samples_vary_within_a_class(trained):
    content = generate(trained, 16, seed=4, label=1, num_inference_steps=20, batch_size=16)
    brightest = {int(np.argmax(i.data[0].sum(0))) for i in content}
    assert len(brightest) >= 2, brightest  # the class holds three bar positions: not one memorised image


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "dpm-solver", "unipc", "EulerDiscreteScheduler"])
def test_same_seed_same_bytes_and_sample_i_alone_equals_in_a_batch(scheduler):
    model = make()
    run = dict(num_inference_steps=5, scheduler=scheduler, batch_size=4)
    a = generate(model, 6, seed=7, **run)
    b = generate(model, 6, seed=7, **run)
    assert [i.data.tobytes() for i in a] == [i.data.tobytes() for i in b]
    other = generate(model, 6, seed=8, **run)
    assert not np.array_equal(a.items[0].data, other.items[0].data)
    for index in (0, 5):
        alone = generate(model, 1, seed=7, start=index, **run)
        assert alone.items[0].data.tobytes() == a.items[index].data.tobytes()
        assert alone.items[0].meta["index"] == index


def test_stochastic_sampler_draws_step_noise_from_the_sample_seed():
    """ddpm adds fresh noise each step: it must come from the sample's generator, not the global one."""
    model = make(conditional=False)
    torch.manual_seed(1)
    a = generate(model, 2, seed=0, scheduler="ddpm", num_inference_steps=5, batch_size=2)
    torch.manual_seed(2)
    b = generate(model, 2, seed=0, scheduler="ddpm", num_inference_steps=5, batch_size=2)
    assert a.items[1].data.tobytes() == b.items[1].data.tobytes()


def test_labels_guidance_and_meta():
    model = make(classes=3)
    content = generate(model, 4, seed=0, num_inference_steps=2, batch_size=4)
    assert [i.meta["label"] for i in content] == [0, 1, 2, 0]
    assert {i.meta["label"] for i in generate(model, 2, seed=0, label=2, num_inference_steps=2)} == {2}
    assert "label" not in generate(model, 1, seed=0, guidance_scale=0.0, num_inference_steps=2).items[0].meta
    with pytest.raises(ConfigError, match=r"^generate\.label: label 3 is not a class"):
        generate(model, 1, seed=0, label=3)
    assert make(conditional=False).num_classes == 0 and make(classes=0).num_classes == 0


@pytest.mark.parametrize("values,key", [
    ({"num_inference_steps": 0}, "generate.num_inference_steps"),
    ({"scheduler": "NoSuchScheduler"}, "generate.scheduler"),
    ({"scheduler": "fast"}, "generate.scheduler"),
    ({"guidance_scale": -1.0}, "generate.guidance_scale"),
    ({"batch_size": 0}, "generate.batch_size"),
])
def test_bad_generation_options_name_the_key(values, key):
    with pytest.raises(ConfigError) as err:
        options(**values)
    message = str(err.value)
    assert message.startswith(key + ": ") and "\n" not in message


def test_more_steps_than_noise_levels_and_incompatible_scheduler_are_config_errors():
    model = make(num_train_timesteps=10)
    with pytest.raises(ConfigError, match=r"^generate\.num_inference_steps: at most num_train_timesteps \(10\)"):
        generate(model, 1, seed=0, num_inference_steps=11)
    with pytest.raises(ConfigError, match=r"^generate\.scheduler: .*cannot sample"):
        generate(model, 1, seed=0, num_inference_steps=2, scheduler="FlowMatchEulerDiscreteScheduler")


@pytest.mark.parametrize("size,shape", [("debug", (1, 8, 8)), ("debug", (3, 16, 12)), ("small", (1, 28, 28)),
                                        ("fast", (1, 28, 28)), ("fast", (1, 16, 16))])
def test_any_image_shape_the_unet_takes(size, shape):
    content = generate(make(shape, size=size), 2, seed=0, num_inference_steps=2, batch_size=2)
    for item in content:
        assert item.data.shape == shape and item.data.dtype == np.float32
        assert 0.0 <= item.data.min() and item.data.max() <= 1.0


@pytest.mark.parametrize("size,shape,step", [("small", (1, 10, 10), 4), ("debug", (1, 7, 7), 2), ("base", (3, 30, 28), 4),
                                                  ("fast", (1, 14, 14), 4)])
def test_image_size_the_unet_cannot_take_names_the_key(size, shape, step):
    with pytest.raises(ConfigError, match=rf"^data\.image_size: ddpm size '{size}' needs image sides divisible by {step}"):
        make(shape, size=size)


@pytest.mark.parametrize("values,key", [
    ({"base_channels": 12}, "generator.base_channels"),
    ({"beta_schedule": "cosine"}, "generator.beta_schedule"),
    ({"label_dropout": 1.0}, "generator.label_dropout"),
    ({"snr_gamma": 0}, "generator.snr_gamma"),
    ({"snr_gamma": -5}, "generator.snr_gamma"),
    ({"patch": 3}, "generator.patch"),
    ({"film": "sometimes"}, "generator.film"),
])
def test_bad_params_name_the_key(values, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        build_params(DDPM.Params, values, "generator")


def test_presets_keep_their_channels_and_refuse_each_others_artifacts(tmp_path):
    """A run records only ``size`` (and ``base_channels``), so a preset's channels are part of every
    saved run: ``small`` must stay (16, 32, 64) for old runs to load; ``fast`` narrows the middle level."""
    small, fast = make((1, 16, 16), classes=10, size="small"), make((1, 16, 16), classes=10, size="fast")
    assert tuple(small.unet.config.block_out_channels) == (16, 32, 64)
    assert tuple(fast.unet.config.block_out_channels) == (16, 16, 32)
    assert sum(p.numel() for p in fast.unet.parameters()) < 0.5 * sum(p.numel() for p in small.unet.parameters())
    # base_channels scales a preset; with small it is still the lean (8, 16, 32) net
    assert tuple(make((1, 16, 16), size="small", base_channels=8).unet.config.block_out_channels) == (8, 16, 32)
    assert tuple(make((1, 16, 16), size="fast", base_channels=32).unet.config.block_out_channels) == (32, 32, 64)
    small.save_artifact(tmp_path / "small")
    params = {"size": "small"}
    reloaded = DDPM.load_artifact(tmp_path / "small", build_params(DDPM.Params, params, "generator"))
    run = dict(num_inference_steps=2, batch_size=2)
    assert generate(reloaded, 2, seed=0, **run).items[1].data.tobytes() == generate(small, 2, seed=0, **run).items[1].data.tobytes()
    with pytest.raises(CheckpointError, match="does not fit this ddpm"):
        DDPM.load_artifact(tmp_path / "small", build_params(DDPM.Params, {"size": "fast"}, "generator"))


def test_artifact_holds_the_ema_weights_and_refuses_foreign_ones(tmp_path):
    model = make()
    with torch.no_grad():
        for p in model.unet_ema.parameters():
            p.add_(0.01)  # EMA and live weights differ: sampling must use the EMA ones after reload
    run = dict(num_inference_steps=3, batch_size=2)
    model.save_artifact(tmp_path)
    loaded = DDPM.load_artifact(tmp_path, build_params(DDPM.Params, {"size": "debug"}, "generator"))
    a, b = generate(model, 2, seed=1, **run), generate(loaded, 2, seed=1, **run)
    assert [i.data.tobytes() for i in a] == [i.data.tobytes() for i in b]
    live = generate(model, 2, seed=1, use_ema=False, **run)
    assert not np.array_equal(live.items[0].data, a.items[0].data)
    with pytest.raises(CheckpointError, match="does not fit this ddpm"):
        DDPM.load_artifact(tmp_path, build_params(DDPM.Params, {"size": "small"}, "generator"))


def test_progress_reports_every_denoising_step():
    from aigc_core import progress_reporting

    seen = []
    with progress_reporting(lambda done, total: seen.append((done, total))):
        generate(make(), 5, seed=0, num_inference_steps=3, batch_size=4)
    assert seen == [(k, 6) for k in range(1, 7)]  # two chunks of four, three steps each


def test_patch_folds_pixels_before_the_unet_and_round_trips(tmp_path):
    model = make((1, 16, 16), classes=10, size="small", patch=2)
    assert model.unet.unet.config.in_channels == 4 and tuple(model.unet.unet.config.sample_size) == (8, 8)
    run = dict(num_inference_steps=2, batch_size=2)
    before = generate(model, 2, seed=0, **run)
    assert before.items[0].data.shape == (1, 16, 16)
    model.save_artifact(tmp_path)
    loaded = DDPM.load_artifact(tmp_path, build_params(DDPM.Params, {"size": "small", "patch": 2}, "generator"))
    assert [i.data.tobytes() for i in generate(loaded, 2, seed=0, **run)] == [i.data.tobytes() for i in before]
    with pytest.raises(CheckpointError, match="does not fit this ddpm"):
        DDPM.load_artifact(tmp_path, build_params(DDPM.Params, {"size": "small"}, "generator"))
    # three levels after folding 2x2: sides must divide by 8, and the message says why
    with pytest.raises(ConfigError, match=r"^data\.image_size: ddpm size 'small' with patch 2 needs image sides divisible by 8"):
        make((1, 28, 28), size="small", patch=2)


def test_snr_gamma_reaches_the_training_loss():
    x, y = bars(16, seed=5)
    losses = {}
    for gamma in (None, 5.0):
        torch.manual_seed(0)
        model = make(snr_gamma=gamma)
        with torch.no_grad():
            losses[gamma] = float(DDPMTraining(model).diffusion_loss(x, y, generator=torch.Generator().manual_seed(0)))
    assert losses[5.0] < 0.95 * losses[None]


def test_cancellation_is_checked_before_every_denoising_step():
    """A server whose client left cancels the call's token; sampling stops at the next step, not
    after the remaining steps of every chunk."""
    from aigc_core import CancelToken, Cancelled, cancellation, progress_reporting

    token, seen = CancelToken(), []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            token.cancel("the client left")

    with cancellation(token), progress_reporting(progress), pytest.raises(Cancelled):
        generate(make(), 5, seed=0, num_inference_steps=3, batch_size=4)
    assert seen == [1, 2]  # of six steps (two chunks of three)
