"""Few-shot data as users have it (#24 item 5): ten drawings, a dozen clips, three pages.

No minimum batch or split size that a small set cannot meet: a batch larger than the training
split trains, a last batch of one trains, and where a split a stage needs would be empty or too
small the run stops before anything is written, in one line naming the data key.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigc_core import ConfigError, Pipeline
from aigc_testutil import cli, write_yaml

RATE = 8000


@pytest.fixture
def drawings(tmp_path):
    """Ten 8x8 digits as PNG files in a flat folder, as a user's scans would be."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "drawings"
    root.mkdir()
    for i in range(10):
        Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(root / f"scan{i:02d}.png")
    return root


@pytest.fixture
def labelled_drawings(tmp_path):
    """The same ten, in class subfolders (even/odd)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "labelled"
    for i in range(10):
        folder = root / ("even" if digits.target[i] % 2 == 0 else "odd")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(folder / f"scan{i:02d}.png")
    return root


@pytest.fixture
def clips(tmp_path):
    """Twelve short FSDD-style clips of one voice, three digits."""
    import soundfile as sf

    root = tmp_path / "clips"
    root.mkdir()
    t = np.arange(RATE // 4) / RATE
    for i in range(12):
        digit = i % 3
        sf.write(root / f"{digit}_me_{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * digit) * t)).astype(np.float32), RATE)
    return root


@pytest.fixture
def pages(tmp_path):
    """Three text files, a few pages in one's own style."""
    root = tmp_path / "pages"
    root.mkdir()
    for i in range(3):
        (root / f"page{i}.txt").write_text(f"Page {i}. " + "The quick brown fox jumps over the lazy dog. " * 40)
    return root


def _image_source(path, **values):
    return {"source": "image-folder", "path": str(path), "image_size": 8, "channels": 1, **values}


def _config(out, data, generator, **extra):
    return {"name": "few", "seed": 0, "data": data, "generator": generator,
            "train": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                      "log_every_n_steps": 1},
            "generate": {"num_samples": 2, **extra.pop("generate", {})}, "metrics": extra.pop("metrics", []),
            "output": {"dir": str(out)}, **extra}


def test_ten_images_split_sensibly(drawings, labelled_drawings):
    from aigc_core.builtin.image_sources import ImageFolder
    from aigc_core.store.config import build_params

    for root, classes in ((drawings, ["all"]), (labelled_drawings, ["even", "odd"])):
        source = ImageFolder(build_params(ImageFolder.Params, _image_source(root), "data", ignore=["source"]))
        source.setup()
        assert source.info["sizes"] == {"train": 8, "val": 1, "test": 1}
        assert source.classes == classes


def test_a_batch_larger_than_the_training_split_trains(drawings, tmp_path):
    config = _config(tmp_path / "run", _image_source(drawings, batch_size=64), {"name": "vae", "size": "debug"})
    run = Pipeline.from_config(config)
    run.fit()
    assert run.manifest()["training"]["global_step"] == 2  # one batch of all 8 images an epoch, none dropped


def test_a_gan_trains_on_a_last_batch_of_one(labelled_drawings, tmp_path):
    # 8 training images in batches of 7 leave one: batch norm cannot normalise a batch of one
    config = _config(tmp_path / "run", _image_source(labelled_drawings, batch_size=7),
                     {"name": "dcgan", "size": "debug", "conditional": True, "class_norm": True})
    run = Pipeline.from_config(config)
    run.fit()
    assert run.manifest()["training"]["global_step"] == 8  # 2 epochs x 2 batches x (D and G steps)


def test_twelve_clips_and_three_pages_train(clips, pages, tmp_path):
    audio = {"source": "audio-folder", "path": str(clips), "sample_rate": RATE, "duration": 0.25, "labels": "pattern",
             "label_pattern": r"^(?P<label>\d)_", "batch_size": 64}
    voice = Pipeline.from_config(_config(tmp_path / "voice", audio, {"name": "mel-vae", "size": "debug", "griffin_lim_iters": 2}))
    voice.run()
    assert voice.manifest()["training"]["global_step"] == 2  # the 10 training clips in one batch an epoch
    text = {"source": "text-files", "path": str(pages), "batch_size": 4096, "val_fraction": 0.1, "test_fraction": 0.0}
    lm = Pipeline.from_config(_config(tmp_path / "text", text, {"name": "causal-lm", "size": "debug", "vocab_size": 300, "context": 16},
                                      generate={"max_new_tokens": 4}, metrics=[{"name": "text-likelihood"}]))
    lm.run()
    assert lm.manifest()["training"]["global_step"] >= 2  # fewer context windows than a batch still train
    assert lm.manifest()["metrics"]["text-likelihood"]["tokens"] > 0


def test_an_empty_training_split_is_one_line_exit_2_and_writes_nothing(drawings, tmp_path, capsys):
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", _config(out, _image_source(drawings, limit=2, val_fraction=0.45, test_fraction=0.45),
                                                     {"name": "dcgan", "size": "debug"}))
    code, _, err = cli(capsys, "run", str(config))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("aigc: error: data.val_fraction: the training split is empty: 2 items")
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("metric, key", [
    ({"name": "frechet", "num_samples": 10, "classifier_epochs": 1}, "data.val_fraction"),
    ({"name": "image-diversity", "num_samples": 10, "classifier_epochs": 1}, "data.val_fraction"),
    ({"name": "image-memorisation", "num_samples": 10, "classifier_epochs": 1}, "data.val_fraction"),
])
def test_image_metrics_on_ten_images_name_the_fraction(drawings, metric, key):
    _refused(_image_source(drawings), "image", metric, key, "in the val split; 0.1 of 10 items gives 1")


def test_audio_classifier_on_twelve_clips_names_the_test_fraction(clips):
    data = {"source": "audio-folder", "path": str(clips), "sample_rate": RATE, "duration": 0.25}
    _refused(data, "audio", {"name": "audio-classifier"}, "data.test_fraction",
             "audio-classifier needs at least 4 items in the test split; 0.1 of 12 items gives 1")


def test_text_likelihood_on_three_files_names_the_val_fraction(pages):
    data = {"source": "text-files", "path": str(pages), "split_mode": "shuffle", "val_fraction": 0.1}
    _refused(data, "text", {"name": "text-likelihood", "split": "val"}, "data.val_fraction",
             "text-likelihood needs at least 1 item in the val split; 0.1 of 3 items gives 0")


GENERATORS = {"image": {"name": "vae", "size": "debug"}, "audio": {"name": "mel-vae", "size": "debug"},
              "text": {"name": "causal-lm", "size": "debug", "vocab_size": 300}}


def _refused(data, modality, metric, key, says):
    """The metric refuses before it trains a classifier or generates anything (no generator given)."""
    from aigc_core.contract.base import MetricContext

    pipeline = Pipeline.from_config(_config("/nonexistent", data, GENERATORS[modality], metrics=[metric]))
    source = pipeline.data_source()
    context = MetricContext(generator=None, data=source, content=None, cache_dir=None, seed=0)
    with pytest.raises(ConfigError) as info:
        pipeline.metrics[0].build().compute(context)
    message = str(info.value)
    assert message.startswith(f"{key}: ") and says in message and "\n" not in message, message
    assert info.value.exit_code == 2


def test_text_shorter_than_one_context_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    pages = tmp_path / "tiny"
    pages.mkdir()
    for i in range(3):
        (pages / f"p{i}.txt").write_text(f"A short page, number {i}.")
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", _config(
        out, {"source": "text-files", "path": str(pages), "val_fraction": 0.0, "test_fraction": 0.0},
        {"name": "causal-lm", "size": "debug", "vocab_size": 300}))
    code, _, err = cli(capsys, "run", str(config))
    assert code == 2 and not out.exists()
    assert err.strip().splitlines()[-1].startswith(f"aigc: error: data: {pages}: the training split is shorter than one context")


def test_a_split_too_small_for_a_metric_stops_the_run_before_training(drawings, tmp_path, capsys):
    """Ten images and a frechet metric: refused as the data is read, not after training."""
    out = tmp_path / "run"
    config = _config(out, _image_source(drawings), {"name": "dcgan", "size": "debug"})
    config["metrics"] = [{"name": "frechet", "num_samples": 10, "classifier_epochs": 1}]
    code, _, err = cli(capsys, "run", str(write_yaml(tmp_path / "c.yaml", config)))
    assert code == 2 and "data.val_fraction: frechet needs at least 2 items in the val split" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
