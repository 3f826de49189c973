"""The mel VAE killed inside an epoch resumes there and ends as if it had never stopped.

Its reparameterisation noise draws from the global generator, so this fails if the resume does
not restore the random state of the epoch in progress, and if it trains again on the clips
already seen.
"""

from __future__ import annotations

from aigc_core.testing import check_mid_epoch_resume


def test_mel_vae_resumes_inside_an_epoch(tmp_path):
    config = {
        "name": "audio-resume", "seed": 0,
        "data": {"source": "synth-notes", "num_items": 80, "duration": 0.25, "sample_rate": 8000,
                 "timbres": ["sine", "square"], "batch_size": 8},
        "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4},
        "train": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                  "log_every_n_steps": 1},
        "metrics": [],
    }
    # 64 training clips: 8 batches (steps) per epoch; checkpoints at 3, 6, 9, 12 = epoch 1, batch 4
    resumed = check_mid_epoch_resume(config, tmp_path, kill_at_step=13, every_n_steps=3)
    assert resumed["epoch"] == 1 and resumed["batch"] == 4
