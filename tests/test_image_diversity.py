"""Diversity, the collapse gate and memorisation in the classifier's feature space.

Stand-in generators built from real digits make the answers known: one that returns the same
image for every seed of a label (a generator that ignores its noise) must be caught; one that
returns different held-out-like images must pass; one that returns training images verbatim
must show up as memorisation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aigc_core import Content, Item, NoParams
from aigc_core.contract.base import MetricContext
from aigc_core.store.config import build_params
from aigc_testutil import cli, tiny_gan_config, write_yaml


class FakeGenerator:
    """Sample i of label i % 10 is ``pick(label, i)`` from a pool of real images."""

    training = False

    def __init__(self, pool_x, pool_y, ignore_noise: bool):
        self.by_label = {int(c): pool_x[pool_y == c] for c in pool_y.unique()}
        self.ignore_noise = ignore_noise

    GenerateOptions = NoParams

    def generate(self, n, seed, options):
        items = []
        rng = np.random.default_rng(seed)
        for i in range(n):
            label = i % 10
            pool = self.by_label[label]
            j = 0 if self.ignore_noise else int(rng.integers(len(pool)))
            items.append(Item(pool[j].numpy(), {"index": i, "label": label}))
        return Content("image", items)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifier-cache")  # one classifier for all tests here


@pytest.fixture(scope="module")
def digits():
    from aigc_core.builtin.image_sources import SklearnDigits

    source = SklearnDigits(build_params(SklearnDigits.Params, {"image_size": 8}, "data"), seed=0)
    source.setup("fit")
    return source


def context(digits, cache, split: str, ignore_noise: bool) -> MetricContext:
    ds = digits.split(split)
    gen = FakeGenerator(ds.images, ds.labels, ignore_noise)
    return MetricContext(gen, digits, Content("image", []), cache, seed=0)


def diversity(gate="warn", **params):
    from aigc_core.builtin.image_diversity import ImageDiversity

    return ImageDiversity(build_params(ImageDiversity.Params, {"classifier_epochs": 3, "gate": gate, **params}, "metrics[0]"))


def test_noise_ignoring_generator_is_caught_by_metric_and_gate(digits, cache):
    collapsed = diversity().compute(context(digits, cache, "train", ignore_noise=True))
    assert collapsed["intra_class_diversity"] == 0.0  # one picture per class
    assert collapsed["recall"] < 0.2 * collapsed["recall_real_floor"]
    assert collapsed["gate"] == "warn" and "recall" in collapsed["gate_reason"]
    assert "intra_class_diversity" in collapsed["gate_reason"]


def test_diverse_real_images_pass_near_their_floor(digits, cache):
    good = diversity().compute(context(digits, cache, "train", ignore_noise=False))
    assert good["gate"] == "pass"
    assert good["recall"] > 0.7 * good["recall_real_floor"]
    assert 0.7 < good["intra_class_diversity"] / good["intra_class_diversity_real_floor"] < 1.4
    assert 0.8 < good["recall_real_floor"] <= 1.0 and 0.8 < good["intra_class_diversity_real_floor"] < 1.25


def test_gate_off_reports_without_judging(digits, cache):
    r = diversity(gate="off").compute(context(digits, cache, "train", ignore_noise=True))
    assert r["gate"] == "off" and "gate_reason" not in r and r["intra_class_diversity"] == 0.0


def test_bad_gate_settings_name_the_key():
    from aigc_core import ConfigError

    with pytest.raises(ConfigError, match=r"^metrics\[0\]\.gate_fraction: must be in \(0, 1\]"):
        diversity(gate_fraction=0)
    with pytest.raises(ConfigError, match=r"^metrics\[0\]\.gate"):
        diversity(gate="explode")


def test_memorisation_tells_copies_from_new_images(digits, cache):
    from aigc_core.builtin.image_memorisation import ImageMemorisation

    metric = ImageMemorisation(build_params(ImageMemorisation.Params, {"classifier_epochs": 3}, "metrics[0]"))
    copies = metric.compute(context(digits, cache, "train", ignore_noise=False))
    fresh = metric.compute(context(digits, cache, "val", ignore_noise=False))
    for space in ("features", "pixels"):
        floor = copies[f"memorised_share_{space}_real_floor"]
        assert floor < 0.3
        assert copies[f"memorised_share_{space}"] > 0.9  # exact training images: distance 0
        assert fresh[f"memorised_share_{space}"] < 0.3


def test_failing_gate_fails_the_run_and_keeps_the_metrics(tmp_path, capsys):
    """An untrained generator draws noise: recall is ~0, so gate=fail ends the run with exit 1."""
    config = tiny_gan_config(tmp_path / "run", metrics=[{"name": "image-diversity", "classifier_epochs": 1,
                                                          "num_samples": 20, "gate": "fail"}])
    config["train"]["max_steps"] = 1
    code, out, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 1, err
    assert "quality gate failed" in err and "recall" in err and "WARNING" in err
    metrics = json.loads((tmp_path / "run" / "manifest.json").read_text())["metrics"]
    assert metrics["image-diversity"]["gate"] == "fail"
    assert (tmp_path / "run" / "outputs").is_dir()  # the outputs stay for a look


def test_manifold_scores_on_known_sets():
    from aigc_core.builtin.image_diversity import manifold_scores

    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 4, generator=g)
    same = manifold_scores(real, torch.randn(200, 4, generator=g), k=3)
    point = manifold_scores(real, torch.zeros(200, 4) + 0.01 * torch.randn(200, 4, generator=g), k=3)
    far = manifold_scores(real, torch.randn(200, 4, generator=g) + 10.0, k=3)
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert point["precision"] > 0.9 and point["recall"] < 0.1  # all good, no variety
    assert far["precision"] == 0.0 and far["coverage"] == 0.0


def test_classifier_cache_reuses_and_retrains_a_damaged_entry(tmp_path):
    """``aigc_core.cached_model``, shared by the image metrics and the audio plugin's: a second ask
    loads the saved weights without training; a torn file is removed and trained again."""
    import torch

    from aigc_core import cache_path, cached_model

    trained = []

    def train():
        trained.append(1)
        torch.manual_seed(len(trained))
        return torch.nn.Linear(3, 2)

    path = cache_path(tmp_path, "demo", {"source": "x", "v": 1})
    assert path.parent == tmp_path / "demo" and path == cache_path(tmp_path, "demo", {"v": 1, "source": "x"})
    first = cached_model(path, lambda: torch.nn.Linear(3, 2), train)
    again = cached_model(path, lambda: torch.nn.Linear(3, 2), train)
    assert len(trained) == 1 and torch.equal(first.weight, again.weight)
    path.write_bytes(path.read_bytes()[:20])  # torn
    cached_model(path, lambda: torch.nn.Linear(3, 2), train)
    assert len(trained) == 2 and path.is_file()


def test_classifier_cache_key_ignores_batching_but_not_content():
    """A run that only changes ``data.batch_size`` reuses the cached classifier; a different split
    of the same data set is another data set and trains its own."""
    from aigc_core import data_identity
    from aigc_core.builtin.image_sources import SklearnDigits

    def identity(**params):
        return data_identity(SklearnDigits(build_params(SklearnDigits.Params, {"image_size": 8, **params}, "data"), seed=0))

    assert identity(batch_size=16, num_workers=1) == identity(batch_size=128)
    assert identity(val_fraction=0.2) != identity(val_fraction=0.1)
    assert identity() != data_identity(SklearnDigits(build_params(SklearnDigits.Params, {"image_size": 8}, "data"), seed=1))
