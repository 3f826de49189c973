"""mel-vae's fitted class prior (generator.prior=class): samples are drawn where the training
clips' codes lie, per class, instead of from N(0, I) (docs/audio.md says why)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core import ConfigError, Pipeline
from aigc_core.testing import generate


def tiny_config(out, prior="class") -> dict:
    return {
        "name": "audio-prior", "seed": 0,
        "data": {"source": "synth-notes", "num_items": 40, "duration": 0.25, "sample_rate": 8000,
                 "timbres": ["sine", "square"], "batch_size": 16, "val_fraction": 0.2, "test_fraction": 0.2},
        "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 2, "prior": prior},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [],
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return Pipeline.from_config(tiny_config(tmp_path_factory.mktemp("prior") / "run")).run()


def codes(gen, pipe):
    """The encoder's posterior means and variances of the training clips, per label."""
    split = pipe.data_source().split("train")
    with torch.no_grad():
        mu, logvar = gen.encoder(gen.encode_input(split.waves), split.labels)
    return mu.double(), logvar.double().exp(), split.labels


def test_fitted_prior_is_the_mixture_of_each_class_posteriors(run_dir):
    pipe = Pipeline.from_run_dir(run_dir)
    gen = pipe.generator
    mu, var, labels = codes(gen, pipe)
    for k in range(2):
        m = mu[labels == k]
        cov = torch.cov(m.T) + torch.diag(var[labels == k].mean(0))
        fitted = (gen.prior_scale[k] @ gen.prior_scale[k].T).double()
        assert torch.allclose(gen.prior_mean[k].double(), m.mean(0), atol=1e-5)
        assert torch.allclose(fitted, cov, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(gen.prior_mean[0], gen.prior_mean[1])  # one Gaussian per class


def test_samples_are_drawn_from_the_asked_class_gaussian(run_dir, monkeypatch):
    gen = Pipeline.from_run_dir(run_dir).generator
    seen = []
    decode = gen.decoder.forward
    monkeypatch.setattr(gen.decoder, "forward", lambda z, y: (seen.append(z.clone()), decode(z, y))[1])
    monkeypatch.setattr(gen, "to_wave", lambda mel: torch.zeros(len(mel), 10))  # no vocoding: speed
    generate(gen, 400, seed=3, label=1)
    z = torch.cat(seen).double()
    scale = gen.prior_scale[1].double()
    white = torch.linalg.solve_triangular(scale, (z - gen.prior_mean[1].double()).T, upper=False).T
    assert float(white.mean(0).abs().max()) < 0.25  # centred on class 1's mean...
    assert torch.allclose(torch.cov(white.T), torch.eye(z.shape[1], dtype=torch.float64), atol=0.3)  # ...its spread
    seen.clear()
    generate(gen, 1, seed=3, label=1, temperature=0.0)
    assert torch.allclose(seen[0][0], gen.prior_mean[1])  # temperature 0: the class's typical code


def test_standard_prior_is_not_fitted_and_same_seed_same_bytes(tmp_path):
    run = Pipeline.from_config(tiny_config(tmp_path / "run", prior="standard")).run()
    gen = Pipeline.from_run_dir(run).generator
    assert torch.equal(gen.prior_mean, torch.zeros_like(gen.prior_mean))
    assert torch.equal(gen.prior_scale, torch.eye(gen.prior_scale.shape[-1]).expand_as(gen.prior_scale))


def test_class_prior_same_seed_same_bytes(run_dir):
    a = Pipeline.from_run_dir(run_dir).generate(3, seed=5)
    b = Pipeline.from_run_dir(run_dir).generate(3, seed=5)
    assert all(np.array_equal(x.data, y.data) for x, y in zip(a.items, b.items))


def test_checkpoint_without_a_fitted_prior_loads_as_standard(run_dir):
    gen = Pipeline.from_run_dir(run_dir).generator
    state = {k: v for k, v in gen.state_dict().items() if not k.startswith("prior_")}
    gen.load_artifact_state(state)  # a checkpoint from before generator.prior existed
    assert torch.equal(gen.prior_mean, torch.zeros_like(gen.prior_mean))


def test_unknown_prior_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^generator\.prior"):
        Pipeline.from_config(tiny_config(tmp_path / "run", prior="wide")).run()
