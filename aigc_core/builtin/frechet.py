"""Fréchet distance in the feature space of a small classifier trained on the data set itself.

Inception features need a download; a classifier trained on the training split is offline,
fits any image size and channel count, and is cached per data set so later runs reuse it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from aigc_core.contract.base import Metric, MetricContext
from aigc_core.helpers.classifier_cache import cache_path, cached_model, data_identity
from aigc_core.helpers.frechet import frechet_distance
from aigc_core.contract.params import Field, Params
from aigc_core.contract.progress import report_progress


class ClassifierParams(Params):
    """What every metric in the classifier's feature space shares; equal values share one cached classifier."""

    num_samples: int = Field(1000, ge=10, description="at most this many images on each side")
    feature_dim: int = Field(64, ge=2, description="width of the classifier's feature layer (the Fréchet space)")
    classifier_epochs: int = Field(8, ge=0, description="epochs of classifier training (cached per data set)")
    batch_size: int = Field(128, description="batch size of classifier training")


class FeatureNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, feature_dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, max(num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        self.eval()
        return torch.cat([self.body(chunk) for chunk in torch.split(x, batch_size)]).numpy()


def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(dataset, "images"):
        return dataset.images, dataset.labels
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.as_tensor(ys)


def train_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, p: ClassifierParams, seed: int) -> FeatureNet:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FeatureNet(x.shape[1], num_classes, p.feature_dim)
    if num_classes < 2:
        return net  # nothing to learn from: random features still compare distributions
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    per_epoch = -(-len(y) // p.batch_size)
    for epoch in range(p.classifier_epochs):
        order = torch.randperm(len(y), generator=g)
        for i, idx in enumerate(torch.split(order, p.batch_size)):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            report_progress(epoch * per_epoch + i + 1, p.classifier_epochs * per_epoch)
    return net


def cached_classifier(ctx: MetricContext, p: ClassifierParams) -> tuple[FeatureNet, float]:
    """The data set's classifier, trained once and cached (``aigc_core.cached_model``); with its test accuracy."""
    source = ctx.data
    info = source.info
    classifier = {"feature_dim": p.feature_dim, "classifier_epochs": p.classifier_epochs, "batch_size": p.batch_size}
    path = cache_path(ctx.cache_dir, "frechet",
                      {**data_identity(source), "classifier": classifier, "shape": info["shape"], "v": 2})
    net = FeatureNet(info["shape"][0], info["num_classes"], p.feature_dim)
    x_test, y_test = tensors(source.split("test"))

    def train() -> FeatureNet:
        x, y = tensors(source.split("train"))
        return train_classifier(x, y, info["num_classes"], p, ctx.seed)

    net = cached_model(path, lambda: net, train)
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x_test).argmax(1) == y_test).float().mean()) if len(y_test) else float("nan")
    return net, accuracy


def generated_images(ctx: MetricContext, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` fresh samples (seed ``ctx.seed + 1``, eval mode) and their intended labels, if any."""
    generated = ctx.generate(n, seed=ctx.seed + 1)
    x = torch.from_numpy(np.stack([np.asarray(i.data, np.float32) for i in generated.items]))
    labels = [i.meta.get("label") for i in generated.items]
    y = torch.as_tensor(labels) if all(v is not None for v in labels) else None
    return x, y


class Sides(NamedTuple):
    """The images a metric compares, ``n`` on each side, with their labels (None: unconditional)."""

    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_gen: torch.Tensor
    y_gen: torch.Tensor | None


def held_out_and_generated(ctx: MetricContext, num_samples: int, need: int, too_few: str) -> Sides:
    """The val and test splits cut to ``n`` images each (at most ``num_samples``), and ``n`` generated
    images; fewer than ``need`` held-out images raise ``ValueError(too_few)``."""
    x_val, y_val = tensors(ctx.data.split("val"))
    x_test, y_test = tensors(ctx.data.split("test"))
    n = min(num_samples, len(x_val), len(x_test))
    if n < need:
        raise ValueError(too_few)
    x_gen, y_gen = generated_images(ctx, n)
    return Sides(x_val[:n], y_val[:n], x_test[:n], y_test[:n], x_gen, y_gen)


class FrechetDistance(Metric):
    Params = ClassifierParams

    def needs(self) -> dict[str, int]:
        """Features need two images a side at least (a covariance); fewer is refused before scoring."""
        return {"val": 2, "test": 2}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        self.require(ctx.data)
        net, accuracy = cached_classifier(ctx, self.params)
        s = held_out_and_generated(ctx, self.params.num_samples, 2,
                                   "frechet: the val and test splits need at least two images each")
        n = len(s.x_val)
        feats_val = net.features(s.x_val)
        fd_generated = frechet_distance(net.features(s.x_gen), feats_val)
        fd_floor = frechet_distance(net.features(s.x_test), feats_val)
        return {
            "fd_generated": round(fd_generated, 4),
            "fd_real_floor": round(fd_floor, 4),
            "ratio_to_floor": round(fd_generated / fd_floor, 3) if fd_floor > 0 else float("inf"),
            "num_samples": n,
            "classifier_test_accuracy": round(accuracy, 4),
        }
