"""The ``stylegan`` generator component: sampling, its options and their errors, artifacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import CheckpointError, ConfigError
from aigc_core.store.config import build_params
from aigc_gan.stylegan import StyleGAN
from aigc_core.testing import generate


def make(shape=(1, 16, 16), classes=10, noise=0.3, **params) -> StyleGAN:
    torch.manual_seed(0)
    model = StyleGAN(build_params(StyleGAN.Params, {"size": "debug", **params}, "generator"),
                     {"shape": list(shape), "num_classes": classes})
    with torch.no_grad():  # as after training: the noise inputs have grown a strength
        for layer in model.G.synthesis.layers:
            layer.noise.strength.fill_(noise)
    return model


def image_option(path) -> bytes:
    """An image option as the CLI and Python give it: the path is read when options are validated."""
    return build_params(StyleGAN.GenerateOptions, {"project": str(path)}, "generate").project


def stack(content) -> np.ndarray:
    return np.stack([i.data for i in content if i.meta.get("kind") != "grid"])


def test_same_seed_same_images_whatever_the_batch_and_start():
    model = make(conditional=True)
    a = generate(model, 5, seed=7, batch_size=2)
    assert np.array_equal(stack(a), stack(generate(model, 5, seed=7, batch_size=2)))
    assert not np.array_equal(stack(a)[0], stack(generate(model, 1, seed=8))[0])
    tail = generate(model, 2, seed=7, start=3, batch_size=2)
    assert np.array_equal(tail.items[0].data, a.items[3].data), "sample i depends on (seed, i) only"
    assert [i.meta["label"] for i in a] == [0, 1, 2, 3, 4]


def test_each_sample_draws_its_own_noise():
    """Two samples with one style differ by their noise maps: the per-pixel noise is per sample."""
    model = make()
    z, noise = model.draw(0, [0, 1])
    assert not torch.equal(noise[-1][0], noise[-1][1])
    ws = model.G.broadcast(model.G.styles(z[:1].expand(2, -1)))
    images = model.G.synthesis(ws, noise)
    assert (images[0] - images[1]).abs().mean() > 1e-4


def test_truncation_shrinks_the_spread_toward_the_class_average():
    model = make(conditional=True)
    z, _ = model.draw(3, list(range(256)))
    y = torch.arange(256) % 10
    model.G.mapping.track(model.G.mapping(z, y), y, beta=0.0)
    full = stack(generate(model, 20, seed=3, label=2))
    low = stack(generate(model, 20, seed=3, label=2, truncation=0.3))
    assert low.std(0).mean() < 0.7 * full.std(0).mean()
    assert all(i.meta["truncation"] == 0.3 for i in generate(model, 2, seed=3, truncation=0.3))


def test_mix_gives_the_mixed_samples_and_a_grid_of_sources_and_mixes():
    model = make((1, 32, 32))
    content = generate(model, 4, seed=1, mix=2, mix_layer=3)
    mixed, grid = content.items[:4], content.items[4]
    assert grid.meta["kind"] == "grid" and grid.data.shape == (1, 3 * 34 + 2, 4 * 34 + 2)
    assert all(i.meta["mix"] == 2 and i.meta["mix_layer"] == 3 for i in mixed)
    plain_a, plain_b = stack(generate(model, 4, seed=1)), stack(generate(model, 4, seed=2))
    m = stack(content)
    assert not np.allclose(m, plain_a, atol=1e-3) and not np.allclose(m, plain_b, atol=1e-3)
    # layer by layer: the first mix_layer layers compute exactly what seed 1's sample computes
    # (same styles, same noise), every later one what it computes with seed 2's styles
    outputs = {}
    hooks = [layer.register_forward_hook(lambda mod, args, out, k=k: outputs.setdefault(k, []).append(out))
             for k, layer in enumerate(model.G.synthesis.layers)]
    try:
        generate(model, 1, seed=1, mix=2, mix_layer=3, batch_size=1)
        mixed_run = {k: v[0] for k, v in outputs.items()}  # the mix is computed first, then its sources
        outputs.clear()
        generate(model, 1, seed=1, batch_size=1)
    finally:
        for h in hooks:
            h.remove()
    same = [k for k in mixed_run if torch.equal(mixed_run[k], outputs[k][0])]
    assert same == [0, 1, 2], f"layers equal to seed 1's run: {same}"
    # the default crossover is half the depth
    assert generate(model, 1, seed=1, mix=2).items[0].meta["mix_layer"] == model.depth // 2


def test_interpolation_writes_frames_of_one_walk_per_sample_and_a_grid():
    model = make((1, 16, 16))
    content = generate(model, 2, seed=1, interpolate=9, frames=6, animation="webp")
    frames = [i for i in content if i.meta.get("kind") != "grid"]
    assert len(frames) == 12 and content.items[-1].meta["kind"] == "grid"
    assert [(i.meta["walk"], i.meta["frame"]) for i in frames[:7]] == [(0, k) for k in range(6)] + [(1, 0)]
    assert {i.meta["animation"] for i in frames} == {"walk_000", "walk_001"}
    assert frames[0].meta["animation_format"] == "webp"
    # the ends are the two seeds' samples (same noise: sample 0 of the first seed)
    assert np.allclose(frames[0].data, generate(model, 1, seed=1).items[0].data, atol=1e-6)
    walk = np.stack([f.data for f in frames[:6]]).reshape(6, -1)
    steps = np.linalg.norm(np.diff(walk, axis=0), axis=1)
    assert steps.max() < 0.6 * np.linalg.norm(walk[-1] - walk[0]), "a walk, not a jump"


def test_projection_returns_the_reconstruction_variations_and_a_grid(tmp_path):
    from PIL import Image

    model = make((1, 16, 16), classes=0)
    target = generate(model, 1, seed=4).items[0].data
    path = tmp_path / "digit.png"
    Image.fromarray((target[0] * 255).round().astype(np.uint8)).resize((28, 28)).save(path)
    content = generate(model, 4, seed=0, project=image_option(path), project_steps=40)
    assert [i.meta.get("projection") for i in content.items] == ["reconstruction", "variation", "variation", "variation", None]
    assert content.items[0].meta["note"] == "resized from 28x28 to 16x16"
    assert content.items[0].meta["projected"] == str(path)
    assert content.items[-1].meta["kind"] == "grid"
    recon = content.items[0].data
    assert np.abs(recon - target).mean() < 0.5 * np.abs(generate(model, 1, seed=99).items[0].data - target).mean()
    unfitted = generate(model, 1, seed=0, project=image_option(path), project_steps=1).items[0]
    assert content.items[0].meta["mse"] < 0.5 * unfitted.meta["mse"], "the steps fit the image"
    variations = stack(content)[1:]
    assert all(not np.allclose(v, recon) for v in variations)
    again = generate(model, 4, seed=0, project=path.read_bytes(), project_steps=40)
    assert np.array_equal(stack(again), stack(content)), "projection is deterministic"


@pytest.mark.parametrize("options, message", [
    ({"truncation": 0.0}, r"^generate\.truncation: must be in \(0, 1\]$"),
    ({"truncation": 1.5}, r"^generate\.truncation: must be in \(0, 1\]$"),
    ({"mix_layer": 2}, r"^generate\.mix_layer: needs mix \(the second seed\)$"),
    ({"mix": 1, "interpolate": 2}, r"^generate\.interpolate: choose one of mix, interpolate and project"),
    ({"frames": 1}, r"^generate\.frames: must be in \[2, 256\]$"),
    ({"animation": "mp4"}, r"^generate\.animation: expected one of 'gif', 'webp', got 'mp4'$"),
])
def test_bad_options_are_one_line_naming_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        build_params(StyleGAN.GenerateOptions, options, "generate")


def test_mixing_layer_beyond_the_depth_names_the_option():
    model = make((1, 16, 16))
    assert model.depth == 6
    with pytest.raises(ConfigError, match=r"^generate\.mix_layer: must be in \[1, 5\]: this 16x16 generator has depth 6, got 6$"):
        generate(model, 2, seed=0, mix=1, mix_layer=6)
    with pytest.raises(ConfigError, match=r"^generate\.label: label 3 is not a class"):
        generate(make(classes=0), 1, seed=0, label=3)


def test_projection_image_errors_name_the_option(tmp_path):
    model = make((1, 16, 16))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ConfigError, match=r"^generate\.project: .*notes\.txt: not a readable image$"):
        generate(model, 2, seed=0, project=image_option(text))
    with pytest.raises(ConfigError, match=r"^generate\.project: not a readable image$"):
        generate(model, 2, seed=0, project=b"GIF89a but not really")
    with pytest.raises(ConfigError, match=r"^generate\.project: .*missing\.png: no such file$"):
        image_option(tmp_path / "missing.png")
    from PIL import Image

    rgba = tmp_path / "colour.png"
    Image.new("RGBA", (16, 16), (200, 10, 10, 255)).save(rgba)
    content = generate(model, 1, seed=0, project=image_option(rgba), project_steps=2)
    assert content.items[0].meta["note"] == "converted from mode RGBA to L"
    with pytest.raises(ConfigError, match=r"^generate\.project: cannot be sharded"):
        generate(model, 1, seed=0, project=image_option(rgba), start=4)


def test_artifact_round_trip_keeps_the_average_w_and_refuses_foreign_weights(tmp_path):
    model = make(conditional=True)
    with torch.no_grad():
        model.G.mapping.w_avg.normal_()
    model.save_artifact(tmp_path)
    params = build_params(StyleGAN.Params, {"size": "debug", "conditional": True}, "generator")
    loaded = StyleGAN.load_artifact(tmp_path, params)
    assert torch.equal(loaded.G.mapping.w_avg, model.G.mapping.w_avg)
    a, b = generate(model, 3, seed=1, truncation=0.5), generate(loaded, 3, seed=1, truncation=0.5)
    assert np.array_equal(stack(a), stack(b))
    other = build_params(StyleGAN.Params, {"size": "small"}, "generator")
    with pytest.raises(CheckpointError, match="does not fit this stylegan"):
        StyleGAN.load_artifact(tmp_path, other)


@pytest.mark.parametrize("size", ["debug", "small", "base"])
def test_adapter_targets_name_the_style_and_mapping_layers_of_every_preset(size):
    model = StyleGAN(build_params(StyleGAN.Params, {"size": size}, "generator"), {"shape": [1, 8, 8], "num_classes": 0})
    names = [name for name, _ in model.named_modules()]
    for pattern in StyleGAN.adapter_targets:
        hits = [n for n in names if n == pattern or n.endswith("." + pattern)]
        assert hits, f"{pattern!r} names no layer of a {size} stylegan"
    affine = [n for n in names if n.endswith(".affine")]
    assert len(affine) == (model.depth - 1) + model.depth // 2  # every modulated convolution, every RGB output


def test_augment_off_written_bare_in_yaml_is_off():
    """YAML 1.1 reads ``augment: off`` as false: the user meant the mode."""
    assert build_params(StyleGAN.Params, {"augment": False}, "generator").augment == "off"
    with pytest.raises(ConfigError, match="generator.augment"):
        build_params(StyleGAN.Params, {"augment": True}, "generator")
