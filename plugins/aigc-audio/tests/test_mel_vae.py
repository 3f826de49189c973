"""The mel VAE through the real pipeline: one tiny run shared by every test in this module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aigc_core import CheckpointError, ConfigError, Pipeline
from aigc_core.testing import generate

ROOT = Path(__file__).resolve().parents[3]


TRAINING_STACK = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib")


def loaded_after(code: str) -> list[str]:
    """Runs ``code`` in a fresh interpreter; the training-stack packages it left in sys.modules."""
    import subprocess
    import sys

    probe = code + (f"\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({TRAINING_STACK!r})))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def generate_command(run: Path, out: Path, n: int = 2) -> str:
    """``aigc generate RUN -n N --out OUT`` as the console script runs it, in-process."""
    return ("import runpy, sys\n"
            f"sys.argv = ['aigc', 'generate', {str(run)!r}, '-n', '{n}', '--out', {str(out)!r}]\n"
            "try:\n    runpy.run_module('aigc_core', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n")


def tiny_config(out: Path) -> dict:
    return {
        "name": "audio-tiny",
        "seed": 0,
        "data": {"source": "synth-notes", "num_items": 40, "duration": 0.25, "sample_rate": 8000,
                 "timbres": ["sine", "square"], "batch_size": 16, "val_fraction": 0.2, "test_fraction": 0.2},
        "generator": {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1},
        "generate": {"num_samples": 4},
        "postprocess": [{"name": "loudness", "target_lufs": -20}, {"name": "audio-quality"}],
        "metrics": [{"name": "audio-classifier", "num_samples": 10, "classifier_epochs": 1}],
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("audio")
    old = os.environ.get("AIGC_CACHE_DIR")
    os.environ["AIGC_CACHE_DIR"] = str(base / "cache")
    try:
        yield Pipeline.from_config(tiny_config(base / "run")).run()
    finally:
        if old is None:
            os.environ.pop("AIGC_CACHE_DIR", None)
        else:
            os.environ["AIGC_CACHE_DIR"] = old


def test_generate_loads_no_training_stack_nor_matplotlib(run_dir, tmp_path):
    """Issue 30: a finished mel-vae run generates (and draws its spectrograms) with plain torch."""
    out = tmp_path / "generated"
    assert loaded_after(generate_command(run_dir, out)) == []
    assert {p.name for p in out.iterdir()} >= {"sample_00000.wav", "sample_00000.png", "spectrograms.png"}


def test_run_writes_wavs_spectrograms_and_metrics(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    scores = manifest["metrics"]["audio-classifier"]
    for key in ("accuracy_generated", "accuracy_real_floor", "fd_generated", "fd_real_floor"):
        assert np.isfinite(scores[key]), key
    assert 0.0 <= scores["accuracy_generated"] <= 1.0 and scores["num_samples"] == 4
    # the classifier learnt from the validation split (8 of 40 clips), never the generator's 24 training clips
    assert scores["classifier_clips"] == 8
    assert {"accuracy_generated_sine", "accuracy_generated_square"} <= set(scores)  # per asked label
    outputs = {Path(o["path"]).name for o in manifest["outputs"]}
    assert "spectrograms.png" in outputs and {"sample_00000.wav", "sample_00000.png"} <= outputs
    info = sf.info(str(run_dir / "outputs" / "sample_00000.wav"))
    assert info.samplerate == 8000 and info.frames == 2000 and info.subtype == "PCM_16"
    assert list((run_dir / "samples").glob("epoch_001/*.wav"))  # training previews are audible too


class StubVocoding:
    """A spectrogram generator whose 'mel' is the clip itself and whose vocoder is ``vocode``."""

    sample_rate = 8000
    info: dict = {}

    from aigc_core import NoParams as GenerateOptions

    def __init__(self, vocode):
        from types import SimpleNamespace

        self.features = SimpleNamespace(log_mel=lambda wave: wave)
        self.vocode = vocode

    def generate(self, n, seed, options):
        from aigc_core import Content, Item

        return Content("audio", [Item(np.zeros(2000, np.float32), {"label": 0}) for _ in range(n)])


def test_resynthesis_scores_the_floors_real_clips_through_the_generators_vocoder(run_dir):
    """A perfect vocoder must land on the real floor exactly; a silent one far from it."""
    from aigc_core.contract.base import MetricContext

    pipe = Pipeline.from_run_dir(run_dir)
    metric = next(p for p in pipe.metrics if p.name == "audio-classifier").build()
    cache = Path(os.environ["AIGC_CACHE_DIR"])

    def score(vocode):
        return metric.compute(MetricContext(StubVocoding(vocode), pipe.data_source(), None, cache, pipe.seed, run_dir))

    perfect = score(lambda wave, n: wave)
    assert perfect["fd_resynthesised"] == pytest.approx(perfect["fd_real_floor"], rel=1e-4)
    assert perfect["accuracy_resynthesised_ratio"] == 1.0 and perfect["resynthesised_ratio_to_floor"] == pytest.approx(1.0)
    silent = score(lambda wave, n: torch.zeros_like(wave))
    assert silent["fd_resynthesised"] > 2 * silent["fd_real_floor"]
    # the real run reports it too, through its own Griffin-Lim
    scores = json.loads((run_dir / "manifest.json").read_text())["metrics"]["audio-classifier"]
    assert np.isfinite(scores["fd_resynthesised"]) and 0.0 <= scores["accuracy_resynthesised"] <= 1.0


def test_same_seed_same_bytes_and_batching_does_not_change_a_clip(run_dir):
    pipe = Pipeline.from_run_dir(run_dir)
    a = pipe.generate(3, seed=5)
    b = Pipeline.from_run_dir(run_dir).generate(3, seed=5)
    for x, y in zip(a.items, b.items):
        assert np.array_equal(x.data, y.data)
        assert x.meta["sample_rate"] == 8000 and x.data.dtype == np.float32
        assert np.abs(x.data).max() <= 1.0
    assert not np.array_equal(a.items[0].data, pipe.generate(1, seed=6).items[0].data)
    single = generate(pipe.generator, 1, seed=5, start=2)
    assert np.array_equal(single.items[0].data, a.items[2].data)  # shards give the same bytes
    assert single.items[0].meta["label"] == a.items[2].meta["label"]


def test_label_by_name_or_index(run_dir):
    gen = Pipeline.from_run_dir(run_dir).generator
    assert {i.meta["class"] for i in generate(gen, 3, label="square").items} == {"square"}
    assert {i.meta["label"] for i in generate(gen, 2, label=0).items} == {0}


def test_label_the_model_was_not_trained_on_names_the_option(run_dir, capsys):
    gen = Pipeline.from_run_dir(run_dir).generator
    for bad in ("trumpet", "2", -1):
        with pytest.raises(ConfigError, match=r"^generate\.label: .* not a class this model was trained on \(classes: sine, square\)"):
            generate(gen, 1, label=bad)
    from aigc_core.cli import main

    assert main(["generate", str(run_dir), "label=trumpet", "-n", "1"]) == 2  # a usage error: exit 2
    err = capsys.readouterr().err
    assert "generate.label: 'trumpet' is not a class" in err and "Traceback" not in err


def test_sample_rate_that_does_not_match_the_checkpoint(run_dir):
    with pytest.raises(ConfigError, match=r"^generator\.sample_rate: is 16000 Hz but the checkpoint .* 8000 Hz"):
        Pipeline.from_run_dir(run_dir, ["generator.sample_rate=16000"])
    pipe = Pipeline.from_run_dir(run_dir, ["data.sample_rate=16000"])
    with pytest.raises(ConfigError, match=r"^data\.sample_rate: is 16000 Hz but the generator was trained at 8000 Hz"):
        pipe.score(pipe.generate(2))


def test_checkpoint_of_another_size_is_refused(run_dir):
    from aigc_audio.model import MelVAE, MelVAEParams

    with pytest.raises(CheckpointError, match="does not fit this mel-vae"):
        MelVAE.load_artifact(run_dir / "model", MelVAEParams(size="small"))


def test_sample_rate_that_does_not_match_the_data_is_refused_before_training():
    from aigc_audio.model import MelVAE, MelVAEParams
    from aigc_core.builtin.audio_sources import SynthNotes, SynthNotesParams

    source = SynthNotes(SynthNotesParams(num_items=4, duration=0.1))
    with pytest.raises(ConfigError, match=r"^generator\.sample_rate: is 16000 Hz but the data source gives 8000 Hz"):
        MelVAE.build(MelVAEParams(size="debug", sample_rate=16000), source, None)


def test_mel_bands_without_fft_bins_are_a_config_error():
    from aigc_audio.model import MelVAE, MelVAEParams

    info = {"sample_rate": 8000, "num_samples": 800, "num_classes": 2, "classes": ["a", "b"]}
    with pytest.raises(ConfigError, match=r"^generator\.n_mels: 64 mel bands over 129 FFT bins"):
        MelVAE(MelVAEParams(size="debug", n_fft=256), info)


def test_vocoder_inverts_a_log_mel_spectrogram_back_to_its_sound():
    from aigc_audio.features import MelFeatures

    rate, n = 8000, 4000
    t = torch.arange(n) / rate
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.sin(2 * torch.pi * 1320 * t))[None]
    feats = MelFeatures(rate, n_mels=64, n_fft=512, hop_length=128, griffin_lim_iters=32)
    back = feats.invert(feats.log_mel(wave), n)
    assert back.shape == (1, n)
    power = torch.fft.rfft(back[0, 500:3500]).abs() ** 2
    freqs = torch.fft.rfftfreq(3000, 1 / rate)
    near = lambda f: float(power[(freqs - f).abs() < 30].sum() / power.sum())  # noqa: E731
    assert near(440) + near(1320) > 0.8 and near(440) > near(1320)  # the two partials, in order
    # the mel spectrogram of the result matches the original's within 3 dB on average
    diff = (feats.log_mel(back) - feats.log_mel(wave))[:, :, 2:-2]
    loud = feats.log_mel(wave)[:, :, 2:-2] > feats.log_mel(wave).max() - 6.0
    assert float(diff[loud].abs().mean()) * 10 / np.log(10) < 3.0


@pytest.mark.skipif(not os.environ.get("AIGC_DATA_DIR"), reason="AIGC_DATA_DIR is not set (FSDD recordings)")
def test_fsdd_config_reads_spoken_digits():
    pipe = Pipeline.from_config(ROOT / "configs/audio-fsdd.yaml", ["data.limit=60"])
    info = pipe.data_source().info
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["sample_rate"] == 8000 and info["num_samples"] == 8000
    train = pipe.data_source().split("train")
    assert train.waves.abs().max() <= 1.0
    assert len(set(train.labels.tolist())) == 10  # data.limit keeps every digit


def test_build_and_metric_accept_any_audio_source():
    """A third-party audio source need only yield (waveform, label) pairs."""
    import torch

    from aigc_audio.model import split_tensors

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.full((8,), float(i)), i % 2

    waves, labels = split_tensors(Pairs())
    assert waves.shape == (3, 8) and labels.tolist() == [0, 1, 0]
    waves, labels = split_tensors(Pairs(), limit=2)
    assert waves.shape == (2, 8) and waves[1, 0] == 1.0


def test_metric_classifier_never_learns_from_generator_training_clips(run_dir, monkeypatch, tmp_path):
    import aigc_audio.metrics as metrics

    seen = []
    original = metrics.train_classifier

    def spy(waves, labels, *args, **kwargs):
        seen.append(waves)
        return original(waves, labels, *args, **kwargs)

    monkeypatch.setattr(metrics, "train_classifier", spy)
    monkeypatch.setenv("AIGC_CACHE_DIR", str(tmp_path))  # a fresh cache: the classifier is trained here
    pipe = Pipeline.from_run_dir(run_dir)
    pipe.score(pipe.generate(2))
    train = pipe.data_source().split("train").waves
    assert len(seen) == 1 and len(seen[0]) == len(pipe.data_source().split("val").waves)
    assert not any(bool((train == clip).all(1).any()) for clip in seen[0])
