"""Diversity of generated images in the feature space of the data set's own classifier.

A Fréchet distance mixes quality and variety into one number; a generator that draws one clean
picture per class can still score "fine" on it. These numbers separate the two:

* precision / recall (k-NN manifolds): how many generated images look real, and how much of the
  real data the generated images cover. Collapse shows as recall near 0.
* density / coverage: the same questions, less sensitive to outliers.
* intra-class diversity: per class, the mean pairwise distance of generated images over that of
  real images of the class. One picture per class gives 0.

Each has its real floor: held-out *test* images scored against the same *val* reference as the
generated ones, so "as good as real data" reads the same on every data set. Nothing here looks
at the training split, which the generator has seen.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from aigc_core.contract.base import Metric, MetricContext
from aigc_core.contract.errors import AigcError
from aigc_core.builtin.frechet import ClassifierParams, cached_classifier, held_out_and_generated
from aigc_core.contract.params import Field


class DiversityParams(ClassifierParams):
    k: int = Field(3, ge=1, description="neighbours that set each sample's manifold radius (precision, recall, density, coverage)")
    gate: Literal["warn", "fail", "off"] = Field("warn", description="collapse gate: warn loudly, fail the run, or off")
    gate_fraction: float = Field(0.5, gt=0, le=1, description="the gate trips when recall or intra-class diversity is below this share of its real floor")


def pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())


def kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row."""
    d = pairwise(x, x)
    k = min(k, len(x) - 1)
    return d.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the row itself


def manifold_scores(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020)."""
    r_real, r_fake = kth_radius(real, k), kth_radius(fake, k)
    d = pairwise(real, fake)  # rows real, columns fake
    inside_real = d <= r_real[:, None]  # fake j lies in real i's ball
    return {
        "precision": float(inside_real.any(0).double().mean()),
        "recall": float((d <= r_fake[None, :]).any(1).double().mean()),
        "density": float(inside_real.sum(0).double().mean() / min(k, len(real) - 1)),
        "coverage": float((d.min(1).values <= r_real).double().mean()),
    }


def mean_pairwise(x: torch.Tensor) -> float:
    return float(torch.pdist(x.double()).mean()) if len(x) > 1 else float("nan")


def intra_class_ratios(fake: torch.Tensor, fake_y: torch.Tensor, real: torch.Tensor, real_y: torch.Tensor) -> dict[int, float]:
    """Per class: mean pairwise distance among generated images / among real images of the class."""
    out = {}
    for c in sorted(set(real_y.tolist()) & set(fake_y.tolist())):
        f, r = fake[fake_y == c], real[real_y == c]
        ref = mean_pairwise(r)
        if len(f) > 1 and ref > 0:
            out[int(c)] = mean_pairwise(f) / ref
    return out


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


class ImageDiversity(Metric):
    Params = DiversityParams

    def needs(self) -> dict[str, int]:
        """Features need two images a side at least (a covariance); fewer is refused before scoring."""
        return {"val": self.params.k + 2, "test": self.params.k + 2}

    def compute(self, ctx: MetricContext) -> dict:
        self.require(ctx.data)
        p = self.params
        net, _ = cached_classifier(ctx, p)
        if p.num_samples < p.k + 2:
            raise AigcError(f"image-diversity: num_samples ({p.num_samples}) must be at least k + 2 ({p.k + 2})")
        x_val, y_val, x_test, y_test, x_gen, y_gen = held_out_and_generated(
            ctx, p.num_samples, p.k + 2, f"image-diversity: the val and test splits need at least {p.k + 2} images each")
        n = len(x_val)
        f_val = torch.from_numpy(net.features(x_val))
        f_test = torch.from_numpy(net.features(x_test))
        f_gen = torch.from_numpy(net.features(x_gen))
        if y_gen is None:  # an unconditional generator: its images' classes as the classifier sees them
            with torch.no_grad():
                y_gen = net.head(f_gen).argmax(1)
        generated = manifold_scores(f_val, f_gen, p.k)
        floor = manifold_scores(f_val, f_test, p.k)
        ratios = intra_class_ratios(f_gen, y_gen, f_val, y_val)
        floor_ratios = intra_class_ratios(f_test, y_test, f_val, y_val)
        result: dict = {}
        for key in ("precision", "recall", "density", "coverage"):
            result[key] = round(generated[key], 4)
            result[f"{key}_real_floor"] = round(floor[key], 4)
        result["intra_class_diversity"] = round(_mean(ratios.values()), 4)
        result["intra_class_diversity_real_floor"] = round(_mean(floor_ratios.values()), 4)
        if ratios:
            worst = min(ratios, key=ratios.get)
            result["intra_class_diversity_worst"] = round(ratios[worst], 4)
            result["intra_class_diversity_worst_class"] = worst
        result["num_samples"] = n
        result.update(self.gate(result))
        return result

    def gate(self, r: dict) -> dict:
        """Collapse shows as recall and intra-class spread far below what real images reach."""
        p = self.params
        if p.gate == "off":
            return {"gate": "off"}
        low = []
        for key in ("recall", "intra_class_diversity"):
            value, floor = r[key], r[f"{key}_real_floor"]
            if np.isfinite(floor) and floor > 0 and not value >= p.gate_fraction * floor:
                low.append(f"{key} {value:g} < {p.gate_fraction:g} x real floor {floor:g}")
        if not low:
            return {"gate": "pass"}
        reason = "; ".join(low) + " (mode collapse: the generator repeats itself)"
        return {"gate": p.gate, "gate_reason": reason}
