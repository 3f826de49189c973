"""A causal LM killed inside an epoch resumes there and ends as if it had never stopped.

With dropout on, every step draws from the global generator, so this fails if the resume does
not restore the random state of the epoch in progress, and if it trains again on the token
blocks already seen (or in another order).
"""

from __future__ import annotations

from aigc_core.testing import check_mid_epoch_resume


def test_causal_lm_resumes_inside_an_epoch(tmp_path):
    config = {
        "name": "text-resume", "seed": 1,
        "data": {"source": "python-docs", "max_chars": 30000, "batch_size": 8},
        "generator": {"name": "causal-lm", "size": "debug", "vocab_size": 300, "lr": 3e-3, "warmup_steps": 2,
                      "dropout": 0.1},
        "train": {"max_epochs": 1, "max_steps": 10, "accelerator": "cpu", "devices": 1, "progress_bar": False,
                  "sample_every_n_epochs": 0, "limit_val_batches": 2, "log_every_n_steps": 1},
        "metrics": [],
    }
    # an epoch is far longer than 10 steps: the checkpoint at step 4 is batch 4 of epoch 0
    resumed = check_mid_epoch_resume(config, tmp_path, kill_at_step=6, every_n_steps=4)
    assert resumed["epoch"] == 0 and resumed["batch"] == 4
