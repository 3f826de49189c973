"""Memorisation of images: are generated images closer to training images than new real ones are?

A generator that reproduces its training images scores well on every quality metric and leaks
its data. Real held-out images set the yardstick: the ``quantile`` of their distances to the
nearest training image (test split) is the threshold, and the share of generated images nearer
than that is the score. The val split, measured the same way, gives the real floor (about
``quantile`` by construction); a memorising generator scores well above it. Distances are taken
both in the classifier's feature space (near-copies up to small shifts) and in pixels (exact copies).
"""

from __future__ import annotations


import numpy as np
import torch

from aigc_core.contract.base import Metric, MetricContext
from aigc_core.builtin.frechet import ClassifierParams, cached_classifier, held_out_and_generated, tensors
from aigc_core.contract.params import Field


class MemorisationParams(ClassifierParams):
    quantile: float = Field(0.1, gt=0, lt=1, description="threshold: this quantile of real test images' distances to their nearest training image")
    max_train: int = Field(10000, ge=1, description="compare against at most this many training images (a fixed, seeded subset)")


def nearest_distance(x: torch.Tensor, reference: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Each row of ``x``'s Euclidean distance to its nearest row of ``reference``."""
    x, reference = x.flatten(1).float(), reference.flatten(1).float()
    return torch.cat([torch.cdist(part, reference).min(1).values for part in torch.split(x, chunk)]).numpy()


def closer_share(generated: np.ndarray, test: np.ndarray, val: np.ndarray, q: float) -> tuple[float, float]:
    threshold = float(np.quantile(test, q))
    return float((generated < threshold).mean()), float((val < threshold).mean())


class ImageMemorisation(Metric):
    Params = MemorisationParams

    def needs(self) -> dict[str, int]:
        """Features need two images a side at least (a covariance); fewer is refused before scoring."""
        return {"val": 2, "test": 2}

    def compute(self, ctx: MetricContext) -> dict:
        self.require(ctx.data)
        p = self.params
        net, _ = cached_classifier(ctx, p)
        x_train, _ = tensors(ctx.data.split("train"))
        if len(x_train) > p.max_train:
            g = torch.Generator().manual_seed(ctx.seed)
            x_train = x_train[torch.randperm(len(x_train), generator=g)[: p.max_train]]
        s = held_out_and_generated(ctx, p.num_samples, 2,
                                   "image-memorisation: the val and test splits need at least two images each")
        sets = {"generated": s.x_gen, "test": s.x_test, "val": s.x_val}
        result: dict = {}
        for space, embed in (("features", lambda x: torch.from_numpy(net.features(x))), ("pixels", lambda x: x)):
            train = embed(x_train)
            d = {name: nearest_distance(embed(x), train) for name, x in sets.items()}
            share, floor = closer_share(d["generated"], d["test"], d["val"], p.quantile)
            result[f"memorised_share_{space}"] = round(share, 4)
            result[f"memorised_share_{space}_real_floor"] = round(floor, 4)
            result[f"median_nearest_train_{space}"] = round(float(np.median(d["generated"])), 4)
            result[f"median_nearest_train_{space}_real"] = round(float(np.median(d["test"])), 4)
        result["num_samples"] = len(s.x_val)
        result["train_compared"] = len(x_train)
        return result
