"""A trained conditional DCGAN must draw different pictures for different seeds of one label.

The collapse this guards against (issue 11): every seed of a label gave the same digit, because
the discriminator judged each image alone and a generator drawing one convincing picture per
class was never penalised. The spread of generated images of a label is compared, in pixels,
with the spread of real held-out images of that label (the generator never saw those).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import Pipeline

STEPS = 300


def train(tmp_path, **generator) -> Pipeline:
    config = {
        "name": "seed-diversity", "seed": 0,
        "data": {"source": "sklearn-digits", "image_size": 16, "batch_size": 64},
        "generator": {"name": "dcgan", "size": "debug", "conditional": True, **generator},
        "train": {"max_steps": STEPS, "max_epochs": -1, "accelerator": "cpu", "progress_bar": False,
                  "sample_every_n_epochs": 0, "limit_val_batches": 0},
        "metrics": [], "postprocess": [],
        "output": {"dir": str(tmp_path / "run")},
    }
    pipe = Pipeline.from_config(config)
    pipe.fit(restart=True)
    return pipe


def spread_ratio(pipe: Pipeline, per_label: int = 16) -> float:
    """Mean over labels: mean pairwise distance of generated / of real test images of the label."""
    test = pipe.data_source().split("test")
    ratios = []
    for label in range(10):
        fake = np.stack([i.data for i in pipe.generate(per_label, seed=5, label=label).items])
        real = test.images[test.labels == label].numpy()
        ratios.append(float(torch.pdist(torch.from_numpy(fake).flatten(1)).mean() /
                            torch.pdist(torch.from_numpy(real).flatten(1)).mean()))
    return float(np.mean(ratios))


@pytest.mark.slow
def test_different_seeds_of_one_label_give_different_digits(tmp_path):
    pipe = train(tmp_path)
    items = pipe.generate(8, seed=1, label=3).items
    assert all(not np.allclose(items[0].data, other.data, atol=0.05) for other in items[1:])
    ratio = spread_ratio(pipe)
    # Calibrated on seeds 0-2: the collapse of issue 11 (class embedding at N(0, 1)) gives 0.13-0.15,
    # the fixed generator 0.35-0.52 depending on the initial weights; 0.3 is twice the collapse.
    assert ratio > 0.3, f"generated digits of one label spread only {ratio:.2f} x as much as real ones"
