"""Built-in image sources, post-processors, exporter and the Fréchet distance."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from aigc_core import ConfigError, Content, DataError, Item
from aigc_core.store.config import build_params
from aigc_core.helpers.frechet import frechet_distance
from aigc_testutil import data_dir, requires_data


def _images(n=4, shape=(1, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    return Content("image", [Item(rng.random(shape, dtype=np.float32), {"index": i}) for i in range(n)])


def _write_png(path, value, mode="L", size=(10, 12)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_sklearn_digits_splits_are_deterministic():
    from aigc_core.builtin.image_sources import SklearnDigits

    params = build_params(SklearnDigits.Params, {"image_size": 16}, "data")
    a, b = SklearnDigits(params, seed=1), SklearnDigits(params, seed=1)
    a.setup(), b.setup()
    assert a.info["shape"] == [1, 16, 16] and a.info["num_classes"] == 10
    assert sum(a.info["sizes"].values()) == 1797
    assert (a.split("val").images == b.split("val").images).all()
    x = a.split("train").images
    assert x.min() >= 0 and x.max() <= 1 and x.dtype.is_floating_point
    c = SklearnDigits(params, seed=2)
    c.setup()
    assert not (c.split("val").labels[:50] == a.split("val").labels[:50]).all()


def test_image_folder_classes_and_corrupt_files(tmp_path, capsys):
    from aigc_core.builtin.image_sources import ImageFolder

    for i in range(3):
        _write_png(tmp_path / "cats" / f"{i}.png", 40 * i, "RGB")
        _write_png(tmp_path / "dogs" / f"{i}.png", 200, "RGB")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG not really")
    params = build_params(ImageFolder.Params, {"path": str(tmp_path), "image_size": 8, "val_fraction": 0.0,
                                               "test_fraction": 0.0}, "data")
    source = ImageFolder(params)
    source.setup()
    assert source.info["classes"] == ["cats", "dogs"] and source.info["shape"] == [3, 8, 8]
    assert len(source.split("train")) == 6
    assert "skipping unreadable image" in capsys.readouterr().err
    strict = build_params(ImageFolder.Params, {"path": str(tmp_path), "on_corrupt": "fail"}, "data")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        ImageFolder(strict).setup()
    with pytest.raises(ConfigError, match=r"^data\.channels: expected one of 1, 3, got 2"):
        build_params(ImageFolder.Params, {"path": "x", "channels": 2}, "data")


def test_mnist_missing_directory_is_named(tmp_path):
    from aigc_core.builtin.image_sources import MNIST

    params = build_params(MNIST.Params, {"root": str(tmp_path / "none")}, "data")
    with pytest.raises(DataError, match=r"none: MNIST files not found .*set data\.root"):
        MNIST(params).setup()


@requires_data
def test_mnist_from_shared_data_and_truncated_file(tmp_path):
    from aigc_core.builtin.image_sources import MNIST

    source = MNIST(build_params(MNIST.Params, {"root": str(data_dir() / "mnist"), "image_size": 16}, "data"))
    source.setup()
    assert source.info["sizes"]["test"] == 10000 and source.info["shape"] == [1, 16, 16]
    assert len(source.split("train")) + len(source.split("val")) == 60000
    small = MNIST(build_params(MNIST.Params, {"root": str(data_dir() / "mnist"), "limit": 700}, "data"))
    small.setup()
    assert small.info["sizes"]["test"] == 100, "a limit keeps MNIST's own test file as the test split"
    assert len(set(small.split("train").labels.tolist())) == 10, "an evenly spaced subset keeps every class"
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_dir() / "mnist" / name, tmp_path / name)
    with gzip.open(data_dir() / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        head = f.read(16 + 784 * 10)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(head)
    broken = MNIST(build_params(MNIST.Params, {"root": str(tmp_path)}, "data"))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: truncated IDX file"):
        broken.setup()


def test_postprocessors_change_items_and_record_it():
    from aigc_core.builtin import image_post as ip

    content = _images()
    up = ip.Upscale(build_params(ip.Upscale.Params, {"size": 20}, "p"))(content)
    assert up.items[0].data.shape == (1, 20, 20)
    assert up.items[0].meta["postprocess"][-1]["name"] == "upscale"
    twice = ip.Upscale(build_params(ip.Upscale.Params, {"factor": 2.0, "method": "bicubic"}, "p"))(content)
    assert twice.items[0].data.shape == (1, 16, 16)
    noisy = _images(1, (1, 16, 16))
    smooth = ip.Denoise(ip.Denoise.Params())(noisy)
    assert smooth.items[0].data.std() < noisy.items[0].data.std()
    flat = Content("image", [Item(np.full((1, 8, 8), 0.4, np.float32) + np.linspace(0, 0.2, 8, dtype=np.float32))])
    stretched = ip.Contrast(ip.Contrast.Params(low=0, high=100))(flat)
    assert stretched.items[0].data.min() == 0.0 and stretched.items[0].data.max() == pytest.approx(1.0)
    sharp = ip.Sharpen(ip.Sharpen.Params())(_images(1, (3, 16, 16)))
    assert sharp.items[0].data.shape == (3, 16, 16) and sharp.items[0].data.dtype == np.float32
    assert content.items[0].data.shape == (1, 8, 8), "inputs are not modified in place"


def test_image_grid_adds_one_item_and_keeps_singles():
    from aigc_core.builtin.image_post import ImageGrid

    content = ImageGrid(ImageGrid.Params(nrow=2, padding=1))(_images(4))
    assert len(content) == 5
    grid = content.items[-1]
    assert grid.meta["kind"] == "grid" and grid.meta["indices"] == [0, 1, 2, 3]
    assert grid.data.shape == (1, 2 * 9 + 1, 2 * 9 + 1)
    again = ImageGrid(ImageGrid.Params())(content)
    assert len(again) == 5, "content already holding a grid gets no second one"
    capped = ImageGrid(ImageGrid.Params(nrow=2, padding=1, max_images=2))(_images(5))
    assert len(capped) == 6, "more singles than max_images still get a grid, of the first ones"
    assert capped.items[-1].meta["indices"] == [0, 1] and capped.items[-1].data.shape == (1, 10, 19)


def test_png_exporter_names_and_provenance(tmp_path):
    from aigc_core.builtin.exporters import PNGExporter
    from aigc_core.helpers.imaging import read_png_text

    content = _images(2)
    content.items[1].meta.update(generator="g", seed=4)
    files = PNGExporter().export(content, tmp_path)
    assert [f.name for f in files] == ["sample_00000.png", "sample_00001.png"]
    assert json.loads(read_png_text(files[1].read_bytes())["aigc"]) == {"generator": "g", "index": 1, "seed": 4}
    assert not list(tmp_path.glob(".*"))


def test_png_exporter_writes_frames_of_an_animation_as_one_gif_or_webp(tmp_path):
    """Items marked as frames of one animation (a walk in a latent space) also become one animated
    file, frames in their ``frame`` order; other items and unsafe names get none."""
    from PIL import Image

    from aigc_core.builtin.exporters import PNGExporter

    frames = [Item(np.full((1, 4, 4), k / 5, np.float32), {"index": k, "animation": "walk_000", "frame": 4 - k})
              for k in range(5)]
    webp = [Item(np.full((3, 4, 4), k / 2, np.float32), {"index": 5 + k, "animation": "walk_001", "frame": k,
                                                          "animation_format": "webp"}) for k in range(3)]
    stray = [Item(np.zeros((1, 4, 4), np.float32), {"index": 9, "animation": "../escape", "frame": 0})]
    content = Content("image", frames + webp + stray)
    files = PNGExporter().export(content, tmp_path)
    names = sorted(f.name for f in files)
    assert names == sorted([f"sample_{i:05d}.png" for i in [*range(8), 9]] + ["walk_000.gif", "walk_001.webp"])
    with Image.open(tmp_path / "walk_000.gif") as gif:
        assert gif.n_frames == 5 and gif.info["loop"] == 0
        firsts = []
        for k in range(gif.n_frames):
            gif.seek(k)
            firsts.append(np.asarray(gif.convert("L"))[0, 0])
    assert firsts == sorted(firsts, reverse=True), "frames in meta['frame'] order, not item order"
    with Image.open(tmp_path / "walk_001.webp") as anim:
        assert anim.n_frames == 3
    again = tmp_path / "again"
    again.mkdir()
    PNGExporter().export(content, again)
    assert (again / "walk_000.gif").read_bytes() == (tmp_path / "walk_000.gif").read_bytes()
    assert (again / "walk_001.webp").read_bytes() == (tmp_path / "walk_001.webp").read_bytes()


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    b = rng.normal(size=(500, 4))
    shifted = b + 3.0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) < 0.2
    assert frechet_distance(a, shifted) == pytest.approx(36.0, rel=0.1)
    with pytest.raises(ValueError):
        frechet_distance(a, rng.normal(size=(10, 3)))
