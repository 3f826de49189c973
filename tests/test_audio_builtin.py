"""The core's audio components: sources, post-processors, the WAV exporter. No model is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aigc_core import ConfigError, Content, DataError, Item
from aigc_core.builtin import audio_post as ap
from aigc_core.builtin.audio_sources import AudioFolder, AudioFolderParams, SynthNotes, SynthNotesParams
from aigc_core.builtin.exporters import WAVExporter
from aigc_core.store.config import build_params

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000


def tone(freq=440.0, seconds=1.0, rate=RATE, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(wave, rate):
    spec = np.abs(np.fft.rfft(wave))
    return np.argmax(spec) * rate / len(wave)


def clips(*waves, rate=RATE):
    return Content("audio", [Item(np.asarray(w, np.float32), {"sample_rate": rate, "index": i})
                             for i, w in enumerate(waves)])


# -- synth-notes ---------------------------------------------------------------------------


def test_synth_notes_is_labelled_deterministic_and_in_range():
    params = SynthNotesParams(num_items=20, duration=0.25)
    a, b = SynthNotes(params, seed=3), SynthNotes(params, seed=3)
    info = a.info
    assert info["sample_rate"] == 8000 and info["num_samples"] == 2000
    assert info["classes"] == ["sine", "square", "saw", "bell", "pluck"]
    train = a.split("train")
    assert train.waves.shape[1] == 2000 and float(train.waves.abs().max()) <= 1.0
    assert np.array_equal(train.waves.numpy(), b.split("train").waves.numpy())
    assert set(train.labels.tolist()) <= set(range(5))
    other = SynthNotes(params, seed=4).split("train").waves
    assert not np.array_equal(train.waves.numpy()[:1], other.numpy()[:1])


def test_synth_notes_rejects_pitch_above_nyquist():
    with pytest.raises(ConfigError, match=r"^data\.max_pitch: .*Nyquist"):
        build_params(SynthNotesParams, {"sample_rate": 8000, "max_pitch": 110}, "data")


# -- audio-folder --------------------------------------------------------------------------


def write_fsdd_like(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sf.write(root / "0_alice_0.wav", tone(300), RATE, subtype="PCM_16")
    sf.write(root / "1_alice_0.wav", tone(600, 0.5), RATE, subtype="PCM_16")
    stereo = np.stack([tone(1000, 1.0, 48000), tone(1000, 1.0, 48000)], axis=1)
    sf.write(root / "1_bob_1.wav", stereo, 48000, subtype="PCM_16")  # stereo, 48 kHz: handled


def test_audio_folder_labels_from_pattern_and_handles_stereo_48k(tmp_path):
    write_fsdd_like(tmp_path)
    src = AudioFolder(AudioFolderParams(path=str(tmp_path), labels="pattern", sample_rate=RATE, duration=1.0,
                                        val_fraction=0.0, test_fraction=0.0))
    info = src.info
    assert info["classes"] == ["0", "1"] and info["num_samples"] == RATE
    data = src.split("train")
    waves, labels = data.waves.numpy(), data.labels.tolist()
    assert labels == [0, 1, 1]
    assert abs(dominant_freq(waves[2], RATE) - 1000) < 5  # resampled from 48 kHz, mixed to mono
    assert 0.25 < np.abs(waves[2]).max() < 0.35
    assert np.all(waves[1][4100:] == 0)  # the 0.5 s clip is zero-padded to 1 s


def test_audio_folder_limit_keeps_a_spread_of_classes(tmp_path):
    write_fsdd_like(tmp_path)
    for name in ("0_alice_1.wav", "0_carol_0.wav"):
        sf.write(tmp_path / name, tone(), RATE)
    src = AudioFolder(AudioFolderParams(path=str(tmp_path), labels="pattern", sample_rate=RATE, limit=2,
                                        val_fraction=0.0, test_fraction=0.0))
    assert sorted(src.split("train").labels.tolist()) == [0, 1]  # the first two files by name are both "0_"


def test_audio_folder_labels_from_subfolders(tmp_path):
    for name in ("dog", "cat"):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "a.flac", tone(), RATE)
    src = AudioFolder(AudioFolderParams(path=str(tmp_path), sample_rate=RATE, val_fraction=0.0, test_fraction=0.0))
    assert src.info["classes"] == ["cat", "dog"]


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage that is not audio"], ids=["zero-length", "corrupt"])
def test_audio_folder_bad_file_skips_with_warning_or_fails_by_setting(tmp_path, capsys, content):
    write_fsdd_like(tmp_path)
    bad = tmp_path / "2_eve_0.wav"
    bad.write_bytes(content)
    src = AudioFolder(AudioFolderParams(path=str(tmp_path), labels="pattern", sample_rate=RATE,
                                        val_fraction=0.0, test_fraction=0.0))
    assert len(src.split("train")) == 3  # the bad file is skipped...
    assert f"skipping unreadable audio {bad}" in capsys.readouterr().err  # ...with a warning naming it
    strict = AudioFolder(AudioFolderParams(path=str(tmp_path), labels="pattern", sample_rate=RATE, on_corrupt="fail"))
    with pytest.raises(DataError, match=rf"^{bad}: unreadable audio .*data\.on_corrupt=skip"):
        strict.setup()


def test_audio_folder_names_the_missing_environment_variable(monkeypatch):
    monkeypatch.delenv("AIGC_NO_SUCH_DIR", raising=False)
    src = AudioFolder(AudioFolderParams(path="$AIGC_NO_SUCH_DIR/fsdd"))
    with pytest.raises(DataError, match=r"^data\.path: environment variable AIGC_NO_SUCH_DIR is not set"):
        src.setup()


# -- post-processors -----------------------------------------------------------------------


def test_loudness_reaches_target_and_skips_silence():
    out = ap.Loudness(ap.LoudnessParams(target_lufs=-20.0))(clips(tone(amp=0.05), np.zeros(RATE)))
    assert ap.measure_lufs(out.items[0].data, RATE) == pytest.approx(-20.0, abs=0.1)
    assert out.items[0].meta["postprocess"][0]["name"] == "loudness"
    assert out.items[1].meta["postprocess"][0]["skipped"] == "near-silent"
    assert np.all(out.items[1].data == 0)


def test_loudness_limits_the_peak_instead_of_clipping():
    out = ap.Loudness(ap.LoudnessParams(target_lufs=-1.0, max_peak=0.9))(clips(tone(amp=0.1)))
    assert np.abs(out.items[0].data).max() == pytest.approx(0.9, abs=1e-4)
    assert out.items[0].meta["postprocess"][0]["peak_limited"] is True


def test_lufs_target_above_zero_is_a_config_error_naming_the_key(capsys):
    with pytest.raises(ConfigError, match=r"^postprocess\[1\]\.target_lufs: must be in \[-70, 0\]"):
        build_params(ap.LoudnessParams, {"target_lufs": 3}, "postprocess[1]")
    from aigc_core.cli import main

    assert main(["check", str(ROOT / "configs/audio-notes.yaml"), "postprocess.1.target_lufs=3"]) == 2
    err = capsys.readouterr().err
    assert "postprocess[1].target_lufs: must be in [-70, 0]" in err and "Traceback" not in err


def test_peak_normalise_trim_and_fade():
    wave = np.concatenate([np.zeros(2000), tone(seconds=0.5), np.zeros(2000)])
    peak = ap.PeakNormalise(ap.PeakNormaliseParams(peak_db=-6.0))(clips(wave)).items[0].data
    assert np.abs(peak).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    trimmed = ap.TrimSilence(ap.TrimSilenceParams(keep_ms=10))(clips(wave)).items[0]
    start, end = trimmed.meta["postprocess"][0]["kept"]
    assert 1900 <= start <= 2000 and 6000 <= end <= 6100 and len(trimmed.data) == end - start
    faded = ap.Fade(ap.FadeParams(fade_in_ms=10, fade_out_ms=10))(clips(np.full(RATE, 0.5))).items[0].data
    assert faded[0] == 0 and abs(faded[-1]) < 1e-3 and faded[RATE // 2] == pytest.approx(0.5)


def test_resample_changes_rate_and_keeps_pitch():
    out = ap.Resample(ap.ResampleParams(sample_rate=16000))(clips(tone(440))).items[0]
    assert out.meta["sample_rate"] == 16000 and len(out.data) == 16000
    assert abs(dominant_freq(out.data, 16000) - 440) < 2


def test_spectral_gate_lowers_hiss_and_keeps_the_tone():
    rng = np.random.default_rng(0)
    wave = tone(500, amp=0.2)
    wave[:3000] = 0
    noisy = wave + 0.01 * rng.standard_normal(RATE).astype(np.float32)
    out = ap.SpectralGate()(clips(noisy)).items[0].data
    assert np.std(out[500:2500]) < 0.5 * np.std(noisy[500:2500])  # at least 6 dB less hiss
    kept = np.sqrt(np.mean(out[4000:7000] ** 2)) / np.sqrt(np.mean(wave[4000:7000] ** 2))
    assert 0.9 < kept < 1.1


def test_quality_gate_drops_silent_clipped_and_nonfinite_with_reasons():
    nan = tone()
    nan[10] = np.nan
    content = clips(tone(), np.zeros(RATE), np.clip(tone(amp=3.0), -1, 1), nan)
    out = ap.AudioQuality()(content)
    assert [i.meta["index"] for i in out.items] == [0]
    reasons = {i.meta["index"]: i.meta["dropped"]["reason"] for i in out.dropped}
    assert reasons[1].startswith("silent") and reasons[2].startswith("clipped") and reasons[3].startswith("non-finite")
    assert all(i.meta["dropped"]["by"] == "audio-quality" for i in out.dropped)


def test_postprocessors_need_a_sample_rate():
    with pytest.raises(ValueError, match="no sample_rate"):
        ap.Fade()(Content("audio", [Item(tone(), {})]))


# -- exporter ------------------------------------------------------------------------------


def test_wav_exporter_writes_pcm16_with_provenance_spectrograms_and_a_sheet(tmp_path):
    content = clips(tone(), tone(880))
    for item in content.items:
        item.meta.update(generator="mel-vae", seed=7, label=1)
    files = WAVExporter().export(content, tmp_path / "a")
    names = sorted(p.name for p in files)
    assert names == ["sample_00000.png", "sample_00000.wav", "sample_00001.png", "sample_00001.wav", "spectrograms.png"]
    info = sf.info(str(tmp_path / "a" / "sample_00001.wav"))
    assert info.subtype == "PCM_16" and info.samplerate == RATE and info.channels == 1
    with sf.SoundFile(str(tmp_path / "a" / "sample_00001.wav")) as f:
        assert json.loads(f.comment) == {"generator": "mel-vae", "index": 1, "label": 1, "seed": 7,
                                         "sample_rate": RATE}
    back, _ = sf.read(str(tmp_path / "a" / "sample_00000.wav"), dtype="float32")
    assert np.abs(back - tone()).max() < 1e-4
    from PIL import Image

    with Image.open(tmp_path / "a" / "sample_00000.png") as img:
        assert img.mode == "RGB" and json.loads(img.text["aigc"])["generator"] == "mel-vae"
    again = WAVExporter().export(content, tmp_path / "b")
    assert [p.read_bytes() for p in files] == [p.read_bytes() for p in again]  # same content, same bytes
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind
