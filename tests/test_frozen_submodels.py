"""A generator that holds a frozen, trained sub-model in eval mode (a vocoder inside a spectrogram
generator) trains without Lightning's "modules in eval mode" warning; any other eval-mode module
still gets it, since that one may be a mistake."""

from __future__ import annotations

import warnings

import pytest
import torch

from aigc_testutil import tiny_gan_config


def eval_mode_warnings(tmp_path, trainable: bool) -> list[str]:
    from aigc_core import Pipeline
    from aigc_core.train import training

    config = tiny_gan_config(tmp_path / "run", data={"source": "sklearn-digits", "image_size": 8, "batch_size": 32,
                                                    "limit": 64}, postprocess=[])
    config["train"].update(sample_every_n_epochs=0, limit_val_batches=0)
    pipe = Pipeline.from_config(config)
    pipe.prepare_run_dir()
    generator = pipe.gen.cls.build(pipe.gen.params, pipe.data_source(), pipe.rundir.preprocess_dir)
    generator.helper = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()).eval()
    generator.helper.requires_grad_(trainable)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.fit(pipe.data_source(), generator, pipe.train, seed=0, rundir=pipe.rundir, resume=False)
    return [str(w.message) for w in caught if "in eval mode" in str(w.message)]


@pytest.mark.parametrize("trainable", [False, True])
def test_eval_mode_warning_only_for_modules_that_could_train(tmp_path, trainable):
    found = eval_mode_warnings(tmp_path, trainable)
    assert bool(found) == trainable, found
