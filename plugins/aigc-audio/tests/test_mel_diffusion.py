"""mel-diffusion through the real pipeline: one tiny run (debug U-Net, synth notes) per module.

Class content is read off the clip itself: a "square" note spreads its energy over odd
harmonics up the spectrum, a "sine" note holds it in one mel band, so the entropy of each loud
frame's energy over the mel bands tells the two apart without a trained classifier (real test
notes: about 0.8 for sines, 1.3 for squares; an untrained model's noise: about 2.9).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_core import CheckpointError, ConfigError, Pipeline
from aigc_core.store.config import build_params

from aigc_audio.diffusion import MelDiffusion
from aigc_audio.diffusion_training import MelDiffusionTraining
from aigc_audio.mel_base import split_tensors
from aigc_core.testing import generate

FAST = {"num_inference_steps": 4, "batch_size": 4}


def config(out: Path, epochs: int = 40, **generator) -> dict:
    return {
        "name": "mel-diffusion-tiny",
        "seed": 0,
        "data": {"source": "synth-notes", "num_items": 64, "duration": 0.25, "sample_rate": 8000,
                 "timbres": ["sine", "square"], "batch_size": 8, "val_fraction": 0.2, "test_fraction": 0.2},
        "generator": {"name": "mel-diffusion", "size": "debug", "griffin_lim_iters": 4, "lr": 3e-3,
                      "label_dropout": 0.2, "ema_decay": 0.99, **generator},
        "train": {"max_epochs": epochs, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                  "log_every_n_steps": 1, "limit_val_batches": 0},
        "generate": {"num_samples": 2, **FAST},
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("mel-diffusion")
    threads = torch.get_num_threads()
    # one thread: the debug U-Net's tensors are too small to share. Under load 6-9 on two cores, this
    # module cost 172 CPU-s (450 s wall, the run's 40 epochs 368 s) with two threads, mostly threads
    # spinning while they wait for each other, and 26 CPU-s (53 s wall) with one
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as env:  # a private classifier cache for this module
            env.setenv("AIGC_CACHE_DIR", str(path / "cache"))
            torch.manual_seed(0)
            yield path
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(base):
    pipe = Pipeline.from_config(config(base / "run"))
    return pipe, pipe.run()


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "logs" / "csv" / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def loss_of(gen, waves, labels) -> torch.Tensor:
    """The training loss of ``gen`` on these clips, at the same noise for every model."""
    return MelDiffusionTraining(gen).diffusion_loss(waves, labels, generator=torch.Generator().manual_seed(1))


def band_spread(gen, waves) -> float:
    """Median over clips of the entropy of the loud frames' energy across mel bands."""
    mel = gen.features.log_mel(torch.as_tensor(np.stack(waves)))
    p = torch.softmax(mel, dim=1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(1)
    loudness = mel.logsumexp(1)
    loud = (loudness > loudness.amax(1, keepdim=True) - 3).float()
    return float(((entropy * loud).sum(1) / loud.sum(1)).median())


def test_loss_falls_on_a_tiny_synthetic_set(run):
    pipe, run_dir = run
    values = losses(run_dir)
    assert len(values) >= 40
    first, last = np.mean(values[:5]), np.mean(values[-10:])
    assert last < 0.6 * first, (first, last)
    # and on clips it never trained on: held-out loss below an untrained model's, same noise
    waves, labels = split_tensors(pipe.data_source().split("test"))
    fresh = MelDiffusion.build(pipe.generator.params, pipe.data_source(), run_dir)
    with torch.no_grad():
        trained = float(loss_of(pipe.generator, waves, labels))
        untrained = float(loss_of(fresh, waves, labels))
    assert trained < 0.6 * untrained, (trained, untrained)


def test_snr_gamma_weights_the_training_loss(run):
    """v-prediction's min-SNR weight min(SNR, 5) / (SNR + 1) is below 1 everywhere, so the same
    weights and noise give a smaller loss with it; a generator that ignored the key would not."""
    pipe, run_dir = run
    waves, labels = split_tensors(pipe.data_source().split("test"))
    weighted = MelDiffusion.build(pipe.generator.params.model_copy(update={"snr_gamma": 5.0}), pipe.data_source(), run_dir)
    weighted.load_state_dict(pipe.generator.state_dict())
    with torch.no_grad():
        plain = float(loss_of(pipe.generator, waves, labels))
        min_snr = float(loss_of(weighted, waves, labels))
    assert min_snr < 0.9 * plain, (min_snr, plain)


def test_guidance_makes_clips_follow_their_label(run):
    gen = run[0].generator
    sine = band_spread(gen, [i.data for i in generate(gen, 8, seed=3, label="sine", guidance_scale=3.0, **FAST)])
    square = band_spread(gen, [i.data for i in generate(gen, 8, seed=3, label="square", guidance_scale=3.0, **FAST)])
    assert square > sine + 0.3 and sine < 2.0, (sine, square)
    # guidance 0 is the unconditional model: the asked label no longer changes a clip
    a = generate(gen, 2, seed=3, label="sine", guidance_scale=0.0, **FAST)
    b = generate(gen, 2, seed=3, label="square", guidance_scale=0.0, **FAST)
    assert [i.data.tobytes() for i in a] == [i.data.tobytes() for i in b]
    assert "guidance_scale" not in a.items[0].meta and b.items[0].meta["class"] == "square"


def test_without_guidance_the_label_moves_a_clip_about_as_much_as_the_noise_does(run):
    """The conditional model itself (guidance 1, no amplification) must use its label: on FSDD
    clip #k of "seven" once looked like clip #k of "two". Same seed, other label against same
    label, other seed, on the clips' log-mels."""
    gen = run[0].generator

    def mels(label: str, seed: int) -> torch.Tensor:
        clips = generate(gen, 4, seed=seed, label=label, guidance_scale=1.0, **FAST)
        return gen.features.log_mel(torch.as_tensor(np.stack([i.data for i in clips])))

    sine = mels("sine", 3)
    by_label = (mels("square", 3) - sine).pow(2).mean().sqrt()
    by_seed = (mels("sine", 4) - sine).pow(2).mean().sqrt()
    assert by_label > 0.6 * by_seed, (float(by_label), float(by_seed))  # 0.88 to 1.05 measured; 0 if the label got lost


def test_same_seed_same_bytes_and_clip_i_does_not_depend_on_n(run):
    gen = run[0].generator
    a = generate(gen, 5, seed=7, **FAST)
    assert [i.data.tobytes() for i in a] == [i.data.tobytes() for i in generate(gen, 5, seed=7, **FAST)]
    alone = generate(gen, 1, seed=7, start=3, **FAST)
    assert alone.items[0].data.tobytes() == a.items[3].data.tobytes()
    assert alone.items[0].meta["index"] == 3 and [i.meta["label"] for i in a] == [0, 1, 0, 1, 0]
    other = generate(gen, 5, seed=8, **FAST)
    assert not np.array_equal(other.items[0].data, a.items[0].data)


def test_save_and_load_round_trip_gives_the_same_clips(run):
    pipe, run_dir = run
    loaded = Pipeline.from_run_dir(run_dir).generator
    a, b = generate(pipe.generator, 3, seed=2, **FAST), generate(loaded, 3, seed=2, **FAST)
    assert [i.data.tobytes() for i in a] == [i.data.tobytes() for i in b]
    from safetensors.torch import load_file

    keys = load_file(str(run_dir / "model" / "model.safetensors")).keys()
    assert any(k.startswith("unet_ema.") for k in keys) and not any(k.startswith("unet.") for k in keys)
    params = build_params(MelDiffusion.Params, {"size": "debug", "patch": 1}, "generator")
    with pytest.raises(CheckpointError, match="does not fit this mel-diffusion"):
        MelDiffusion.load_artifact(run_dir / "model", params)
    # a run trained before FiLM (or with film: false) is refused in one line that names film
    params = build_params(MelDiffusion.Params, {"size": "debug", "film": False}, "generator")
    with pytest.raises(CheckpointError, match="film") as refused:
        MelDiffusion.load_artifact(run_dir / "model", params)
    assert "\n" not in str(refused.value)


def test_without_a_vocoder_griffin_lim_with_a_one_line_notice_and_the_honest_metric(base, capfd):
    cfg = config(base / "notice", epochs=1)
    cfg["metrics"] = [{"name": "audio-classifier", "num_samples": 10, "classifier_epochs": 1}]
    run_dir = Pipeline.from_config(cfg).run()
    notices = [line for line in capfd.readouterr().err.splitlines() if "Griffin-Lim" in line]
    assert len(notices) == 1 and "mel-diffusion" in notices[0] and "generator.vocoder" in notices[0]
    assert len(list((run_dir / "outputs").glob("*.wav"))) == 2
    # the metric scores a generator without a temperature option (it passes that only to the VAE)
    scores = json.loads((run_dir / "manifest.json").read_text())["metrics"]["audio-classifier"]
    assert 0.0 <= scores["accuracy_generated"] <= 1.0 and np.isfinite(scores["fd_generated"])


@pytest.mark.parametrize("values,key", [
    ({"num_inference_steps": 0}, "generate.num_inference_steps"),
    ({"scheduler": "NoSuchScheduler"}, "generate.scheduler"),
    ({"scheduler": "fast"}, "generate.scheduler"),
    ({"guidance_scale": -1.0}, "generate.guidance_scale"),
])
def test_bad_generation_options_name_the_key(values, key):
    with pytest.raises(ConfigError) as err:
        build_params(MelDiffusion.GenerateOptions, values, "generate")
    assert str(err.value).startswith(key + ": ") and "\n" not in str(err.value)


def test_bad_generator_settings_are_one_line_errors_naming_the_key(base, run):
    with pytest.raises(ConfigError, match=r"^generator\.patch: "):
        build_params(MelDiffusion.Params, {"patch": 3}, "generator")
    with pytest.raises(ConfigError, match=r"^generator\.n_mels: mel-diffusion size 'small' with patch 4 needs n_mels "
                                          r"divisible by 16, got 56"):
        Pipeline.from_config(config(base / "bad", size="small", n_mels=56, patch=4)).run()
    assert not (base / "bad" / "model").exists()
    with pytest.raises(ConfigError, match=r"^generate\.label: 'flute' is not a class"):
        generate(run[0].generator, 1, seed=0, label="flute", **FAST)
    with pytest.raises(ConfigError, match=r"^generate\.num_inference_steps: at most num_train_timesteps"):
        generate(run[0].generator, 1, seed=0, num_inference_steps=5000)

