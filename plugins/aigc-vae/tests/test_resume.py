"""A VAE killed inside an epoch resumes there and ends as if it had never stopped.

The reparameterisation noise and the dynamic binarisation both draw from the global generator,
so this fails if the resume does not restore the random state of the epoch in progress, and if
it trains again on the batches already seen.
"""

from __future__ import annotations

from aigc_core.testing import check_mid_epoch_resume


def test_vae_resumes_inside_an_epoch(tmp_path):
    config = {
        "name": "vae-resume", "seed": 2,
        "data": {"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 120},
        "generator": {"name": "vae", "size": "debug", "likelihood": "bernoulli", "binarize": "dynamic"},
        "train": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                  "log_every_n_steps": 1},
        "metrics": [],
    }
    # 96 training images: 6 batches (steps) per epoch; checkpoints at 4, 8 = epoch 1, batch 2
    resumed = check_mid_epoch_resume(config, tmp_path, kill_at_step=9, every_n_steps=4)
    assert resumed["epoch"] == 1 and resumed["batch"] == 2
