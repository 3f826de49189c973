"""The mel-vocoder through the real pipeline, and mel-vae using it: one tiny vocoder run per module."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_core import ConfigError, Pipeline

RATE = 8000


def notes(num_items: int = 48, rate: int = RATE) -> dict:
    return {"source": "synth-notes", "num_items": num_items, "duration": 0.25, "sample_rate": rate,
            "timbres": ["sine"], "batch_size": 8, "val_fraction": 0.2, "test_fraction": 0.2}


def vocoder_config(out: Path, **generator) -> dict:
    return {
        "name": "vocoder-tiny",
        "seed": 0,
        "data": notes(),
        "generator": {"name": "mel-vocoder", "size": "debug", "segment_frames": 8, "gan_start_steps": 52,
                      **generator},
        "train": {"max_epochs": 16, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                  "log_every_n_steps": 1, "limit_val_batches": 0},
        "generate": {"num_samples": 3},
        "metrics": [{"name": "vocoder-fidelity", "num_clips": 4}],
        "output": {"dir": str(out)},
    }


def vae_config(out: Path, vocoder: Path | None, rate: int = RATE, **generator) -> dict:
    gen = {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 4, **generator}
    if vocoder is not None:
        gen["vocoder"] = str(vocoder)
    return {
        "name": "vae-tiny",
        "seed": 0,
        "data": notes(24, rate),
        "generator": gen,
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "generate": {"num_samples": 2},
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocoder")
    with pytest.MonkeyPatch.context() as env:  # a private classifier cache for this module
        env.setenv("AIGC_CACHE_DIR", str(path / "cache"))
        torch.manual_seed(0)
        yield path


@pytest.fixture(scope="module")
def vocoder_run(base):
    config = vocoder_config(base / "vocoder")
    config["train"]["sample_every_n_epochs"] = 16  # one preview, after the last epoch
    return Pipeline.from_config(config).run()


def stft_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "logs" / "csv" / "metrics.csv", newline="") as f:
        return [float(r["loss_stft"]) for r in csv.DictReader(f) if r.get("loss_stft")]


def tone(freq: float, seconds: float = 0.25, rate: int = RATE) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return (0.5 * torch.sin(2 * torch.pi * freq * t))[None]


def peak_hz(wave: torch.Tensor, rate: int = RATE) -> float:
    x = wave[0, 256:-256] * torch.hann_window(wave.shape[1] - 512)
    return float(torch.fft.rfftfreq(len(x), 1 / rate)[torch.fft.rfft(x).abs().argmax()])


def test_vocoder_loss_falls_on_a_tiny_set(vocoder_run):
    losses = stft_losses(vocoder_run)
    assert len(losses) >= 60
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.7 * first, (first, last)
    with open(vocoder_run / "logs" / "csv" / "metrics.csv", newline="") as f:
        assert any(r.get("loss_d") for r in csv.DictReader(f))  # the discriminators did train


def test_previews_during_training_resynthesise_the_training_data(vocoder_run):
    """The generator has no Trainer to ask for data: the training module hands it the source."""
    previews = sorted((vocoder_run / "samples" / "epoch_016").glob("*.wav"))
    assert len(previews) == 4
    import soundfile as sf

    wave, rate = sf.read(str(previews[0]))
    assert rate == RATE and np.abs(wave).max() > 0.01  # sound, not silence


def test_resynthesis_of_a_pure_tone_keeps_its_pitch(vocoder_run):
    gen = Pipeline.from_run_dir(vocoder_run).generator
    for freq in (220.0, 392.0):  # inside the notes' range (MIDI 48-72), not necessarily a trained note
        back = gen.vocode(gen.features.log_mel(tone(freq)), tone(freq).shape[1])
        assert abs(peak_hz(back) - freq) / freq < 0.06, (freq, peak_hz(back))  # within a semitone


def test_save_and_load_round_trip_gives_the_same_samples(vocoder_run):
    from aigc_audio.vocoder import load_vocoder_run

    pipe = Pipeline.from_run_dir(vocoder_run)
    mel = pipe.generator.features.log_mel(tone(330.0))
    a = pipe.generator.vocode(mel, 2000)
    net, record = load_vocoder_run(vocoder_run, pipe.generator.net.mel_settings())
    assert torch.equal(a, net.vocode(mel, 2000))
    assert record["checkpoint_sha256"] == json.loads((vocoder_run / "manifest.json").read_text())["checkpoint"]["files"]["model.safetensors"]
    again = Pipeline.from_run_dir(vocoder_run).generate(3, seed=1)
    assert [i.meta["source_index"] for i in again.items] == [0, 1, 2]
    assert all(np.array_equal(x.data, y.data) for x, y in zip(again.items, pipe.generate(3, seed=1).items))


def test_a_vocoder_run_loads_and_generates_without_the_training_stack(vocoder_run, base):
    """Issue 30: load_vocoder_run (how a spectrogram generator takes a vocoder) gives the plain
    network, and ``aigc generate`` on the vocoder's own run loads neither Lightning nor matplotlib."""
    import os
    import subprocess
    import sys

    out = base / "vocoder-generated"
    code = (
        "import runpy, sys\n"
        "from aigc_audio.vocoder import VocoderNet, load_vocoder_run\n"
        f"net, _ = load_vocoder_run({str(vocoder_run)!r}, {{}})\n"
        "assert type(net) is VocoderNet and not net.training\n"
        f"sys.argv = ['aigc', 'generate', {str(vocoder_run)!r}, '-n', '2', '--out', {str(out)!r}]\n"
        "try:\n    runpy.run_module('aigc_core', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = ('pytorch_lightning', 'lightning', 'lightning_fabric', 'torchmetrics', 'matplotlib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert len(list(out.glob("sample_*.wav"))) == 2


def test_fidelity_metric_reports_vocoder_and_griffin_lim(vocoder_run):
    scores = json.loads((vocoder_run / "manifest.json").read_text())["metrics"]["vocoder-fidelity"]
    for key in ("stft_distance_vocoder", "stft_distance_griffin_lim", "stoi_vocoder", "stoi_griffin_lim"):
        assert np.isfinite(scores[key]), key
    assert scores["ratio_vocoder_to_griffin_lim"] == pytest.approx(
        scores["stft_distance_vocoder"] / scores["stft_distance_griffin_lim"], rel=1e-3)
    assert scores["num_clips"] == 4


def test_mel_vae_uses_a_named_vocoder_and_carries_it(base, vocoder_run, capfd):
    copy = base / "vocoder-copy"
    shutil.copytree(vocoder_run, copy)
    run = Pipeline.from_config(vae_config(base / "vae-with", copy)).run()
    assert "Griffin-Lim" not in capfd.readouterr().err
    info = json.loads((run / "model" / "model.json").read_text())["info"]
    assert info["vocoder"]["run"] == str(copy)
    shutil.rmtree(copy)  # the mel-vae's checkpoint carries the vocoder: the run stays usable
    pipe = Pipeline.from_run_dir(run)
    assert pipe.generator.vocoder is not None
    gen = pipe.generator
    mel = torch.zeros(1, 1, gen.params.n_mels, gen.padded_frames)
    vocoded = gen.to_wave(mel)
    griffin = gen.features.invert(mel[:, 0, :, :gen.frames] * gen.norm[1] + gen.norm[0], gen.num_samples)
    assert not torch.allclose(vocoded, griffin, atol=1e-3)  # it is not Griffin-Lim underneath
    meta = pipe.generate(1, seed=0).items[0].meta  # and each clip says so (the web page shows it)
    assert meta["vocoder"] == "mel-vocoder" and meta["vocoder_run"] == str(copy)
    assert "Griffin-Lim" not in capfd.readouterr().err


def test_without_a_vocoder_griffin_lim_with_a_one_line_notice(base, capfd):
    run = Pipeline.from_config(vae_config(base / "vae-without", None)).run()
    err = capfd.readouterr().err
    notices = [line for line in err.splitlines() if "Griffin-Lim" in line]
    assert len(notices) == 1 and "generator.vocoder" in notices[0]
    assert len(list((run / "outputs").glob("*.wav"))) == 2
    meta = Pipeline.from_run_dir(run).generate(1, seed=0).items[0].meta
    assert meta["vocoder"] == "griffin-lim" and meta["griffin_lim_iters"] == 4 and "vocoder_run" not in meta


def test_vocoder_of_another_sample_rate_is_a_one_line_error_naming_the_key(base, vocoder_run):
    with pytest.raises(ConfigError) as err:
        Pipeline.from_config(vae_config(base / "vae-16k", vocoder_run, rate=16000)).run()
    assert str(err.value).startswith("generator.vocoder: ") and "sample_rate 8000 Hz" in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 2
    assert not (base / "vae-16k" / "model").exists()


def test_vocoder_of_another_mel_setting_is_a_one_line_error_naming_the_key(base, vocoder_run):
    with pytest.raises(ConfigError, match=r"^generator\.vocoder: .* trained with n_mels 64 but this generator uses 32"):
        Pipeline.from_config(vae_config(base / "vae-32", vocoder_run, n_mels=32)).run()
    not_a_vocoder = base / "not-a-vocoder"
    not_a_vocoder.mkdir()
    # a manifest names its generator; one written before that kept a copy of the config
    for manifest in ({"generator": "mel-vae"}, {"config": {"generator": {"name": "mel-vae"}}}):
        (not_a_vocoder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ConfigError, match=r"^generator\.vocoder: .* holds a 'mel-vae' run, not a mel-vocoder"):
            Pipeline.from_config(vae_config(base / "vae-x", not_a_vocoder)).run()
    # a missing folder is refused with the config (PathField), a folder that holds no run by load_vocoder_run
    with pytest.raises(ConfigError, match=r"^generator\.vocoder: .*nowhere: no such directory; train one first"):
        Pipeline.from_config(vae_config(base / "vae-y", base / "nowhere")).run()
    (base / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^generator\.vocoder: .*empty: not a run directory \(no manifest\.json\)"):
        Pipeline.from_config(vae_config(base / "vae-z", base / "empty")).run()


@pytest.fixture(scope="module")
def magnitude_run(base):
    """The FSDD config's recipe at the debug size: magnitude loss alone, Griffin-Lim refinement."""
    config = vocoder_config(base / "vocoder-magnitude", stft_weight=0.0, magnitude_weight=1.0, griffin_lim_iters=8,
                            phase="direct", lr=3e-3, discriminator="none")
    return Pipeline.from_config(config).run()


def test_magnitude_recipe_learns_and_keeps_pitch(magnitude_run):
    """Held-out notes: the trained magnitude is closer to the true STFT than where training
    started (the least-squares inverse of the mel filter bank, which an untrained head gives)."""
    from aigc_audio.model import split_tensors
    from aigc_audio.vocoder import VocoderNet, saved_params
    from aigc_audio.vocoder_training import MelVocoderTraining

    pipe = Pipeline.from_run_dir(magnitude_run)
    gen = pipe.generator
    training = MelVocoderTraining(gen)  # the magnitude loss is training's
    waves, _ = split_tensors(pipe.data_source().split("test"))
    untrained = VocoderNet(saved_params(gen.info["vocoder_params"]))
    untrained.norm.copy_(gen.net.norm)
    with torch.no_grad():
        mel = gen.features.log_mel(waves)
        trained_d = float(training.magnitude_distance(gen.net.spectrum(mel), waves))
        untrained_d = float(training.magnitude_distance(untrained.spectrum(mel), waves))
    assert trained_d < 0.98 * untrained_d, (trained_d, untrained_d)
    for freq in (220.0, 392.0):
        back = gen.vocode(gen.features.log_mel(tone(freq)), tone(freq).shape[1])
        assert abs(peak_hz(back) - freq) / freq < 0.06, (freq, peak_hz(back))


def test_refinement_is_applied_and_the_metric_reports_the_network_alone(magnitude_run):
    scores = json.loads((magnitude_run / "manifest.json").read_text())["metrics"]["vocoder-fidelity"]
    assert scores["vocoder_refinement_iters"] == 8
    assert np.isfinite(scores["stft_distance_vocoder_unrefined"])
    assert scores["stft_distance_vocoder"] != scores["stft_distance_vocoder_unrefined"]
    # a mel-vae carrying this vocoder rebuilds it with its refinement
    from aigc_audio.vocoder import load_vocoder_run

    net, record = load_vocoder_run(magnitude_run, {})
    assert net.griffin_lim_iters == 8 and record["params"]["phase"] == "direct"


def test_runs_saved_before_the_phase_setting_load_with_the_old_head():
    from aigc_audio.vocoder import MelVocoderParams, VocoderNet, saved_params

    old = {k: v for k, v in vars(MelVocoderParams(sample_rate=RATE, n_fft=512, hop_length=128)).items()
           if k not in ("phase", "griffin_lim_iters", "magnitude_weight", "lr_schedule")}
    params = saved_params(old)
    assert params.phase == "advance" and params.griffin_lim_iters == 0
    assert VocoderNet(params).head.out_features == 2 * 257


def test_a_vocoder_with_every_loss_off_is_a_one_line_error(base):
    config = vocoder_config(base / "vocoder-no-loss", stft_weight=0.0)
    with pytest.raises(ConfigError, match=r"^generator\.stft_weight: ") as err:
        Pipeline.from_config(config).run()
    assert "\n" not in str(err.value)


def test_a_vocoder_run_of_an_older_version_is_a_one_line_checkpoint_error(base, vocoder_run):
    from aigc_core import CheckpointError

    old = base / "vocoder-old"
    shutil.copytree(vocoder_run, old)
    model_json = old / "model" / "model.json"
    saved = json.loads(model_json.read_text())
    saved["info"]["vocoder_params"]["wave_weight"] = 0.0  # a setting an earlier round had, gone since
    model_json.write_text(json.dumps(saved))
    # the manifest's sha256 of model.json must still match: re-record it as training would
    import hashlib

    manifest = json.loads((old / "manifest.json").read_text())
    manifest["checkpoint"]["files"]["model.json"] = hashlib.sha256(model_json.read_bytes()).hexdigest()
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"^generator\.vocoder: .*vocoder-old: trained by another version "
                                              r"of aigc-audio \(settings wave_weight no longer exist\)") as err:
        Pipeline.from_config(vae_config(base / "vae-old", old)).run()
    assert "\n" not in str(err.value)


def harmonic_with_a_pause(rate: int = RATE) -> torch.Tensor:
    """A 220 Hz voice-like tone (three harmonics), 0.1 s of near silence, the tone again: the
    pause is where an inverted mel spectrogram hisses. A faint noise floor, as recordings have."""
    t = torch.arange(int(0.1 * rate)) / rate
    voiced = sum(0.3 / k * torch.sin(2 * torch.pi * 220.0 * k * t) for k in (1, 2, 3))
    wave = torch.cat([voiced, torch.zeros(int(0.1 * rate)), voiced])[None]
    return wave + 1e-3 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(0))


def test_mel_match_fits_the_clips_own_log_mel_and_keeps_the_pitch():
    from aigc_audio.features import MelFeatures

    wave = harmonic_with_a_pause()
    plain = MelFeatures(RATE, n_mels=64, n_fft=512, hop_length=128, griffin_lim_iters=8)
    matched = MelFeatures(RATE, n_mels=64, n_fft=512, hop_length=128, griffin_lim_iters=8, mel_match_iters=40)
    target = plain.log_mel(wave)
    with torch.inference_mode():  # as generation and sharding run it
        before = plain.invert(target, wave.shape[1])
        after = matched.invert(target, wave.shape[1])
    error = lambda w: float((plain.log_mel(w) - target).abs().mean())  # noqa: E731
    assert error(after) < 0.9 * error(before), (error(before), error(after))  # 0.81 measured
    assert abs(peak_hz(after) - 220.0) < 13, peak_hz(after)


def test_vocoder_mel_match_is_per_clip_and_the_generator_can_override_it(base, magnitude_run):
    from aigc_audio.vocoder import load_vocoder_run

    net, _ = load_vocoder_run(magnitude_run, {})
    net.mel_match_iters = 10
    waves = torch.cat([harmonic_with_a_pause(), 0.5 * tone(330.0, seconds=0.3)])
    mel = net.log_mel(waves)
    both = net.vocode(mel, waves.shape[1])
    assert torch.equal(both[1:], net.vocode(mel[1:], waves.shape[1]))  # a clip's bytes do not depend on its batch
    unmatched = net.vocode(mel, waves.shape[1], mel_match_iters=0)
    error = lambda w: float((net.log_mel(w) - mel).abs().mean())  # noqa: E731
    assert error(both) < error(unmatched)
    # a spectrogram generator takes the vocoder run's setting unless it names its own
    run = Pipeline.from_config(vae_config(base / "vae-match", magnitude_run)).run()
    default = Pipeline.from_run_dir(run)
    assert default.generator.params.mel_match_iters is None
    override = Pipeline.from_run_dir(run, ["generator.mel_match_iters=6"])
    a, b = default.generate(1, seed=3).items[0].data, override.generate(1, seed=3).items[0].data
    assert not np.array_equal(a, b)
    assert np.array_equal(b, Pipeline.from_run_dir(run, ["generator.mel_match_iters=6"]).generate(1, seed=3).items[0].data)


@pytest.mark.parametrize("component", ["mel-vae", "mel-vocoder"])
def test_a_negative_mel_match_is_a_one_line_error_naming_the_key(base, component):
    out = base / f"bad-match-{component}"
    config = (vae_config(out, None, mel_match_iters=-1) if component == "mel-vae"
              else vocoder_config(out, mel_match_iters=-1))
    with pytest.raises(ConfigError, match=r"^generator\.mel_match_iters: ") as err:
        Pipeline.from_config(config).run()
    assert "\n" not in str(err.value) and err.value.exit_code == 2
    assert not (out / "model").exists()
