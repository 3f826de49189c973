"""A DCGAN killed inside an epoch resumes there and ends as if it had never stopped.

Its noise comes from the global generator, so this fails if the resume does not restore the
random state of the epoch in progress, and if it trains again on the batches already seen.
"""

from __future__ import annotations

from aigc_core.testing import check_mid_epoch_resume


def test_dcgan_resumes_inside_an_epoch(tmp_path):
    config = {
        "name": "gan-resume", "seed": 4,
        "data": {"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 120},
        "generator": {"name": "dcgan", "size": "debug", "conditional": True},
        "train": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                  "log_every_n_steps": 1},
        "metrics": [],
    }
    # 96 training images: 6 batches of two optimiser steps per epoch; checkpoints at 4, 8, 12, 16 = epoch 1, batch 2
    resumed = check_mid_epoch_resume(config, tmp_path, kill_at_step=18, every_n_steps=4)
    assert resumed["epoch"] == 1 and resumed["batch"] == 2
