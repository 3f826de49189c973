"""One inference path: the CLI, the HTTP server and the Python API give the same bytes for the
same request, because all three go through ``aigc_core.Inference`` (the one merge of the run's
defaults, the request's options and the seed)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from aigc_testutil import cli
from server_kit import fake_text_run, tiny_gan_run


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    return tiny_gan_run(tmp_path_factory.mktemp("one-path") / "gan")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """A run whose generate section sets a seed other than the run's (0): requests without a seed get 11."""
    return fake_text_run(tmp_path_factory.mktemp("one-path") / "text", generate="{num_samples: 2, seed: 11, "
                         "max_new_tokens: 6}")


def _client(*runs: Path):
    from fastapi.testclient import TestClient

    from aigc_core.server import create_app

    return TestClient(create_app(list(runs)), base_url="http://127.0.0.1")


def test_cli_server_and_python_write_the_same_image_bytes(gan_run, tmp_path, capsys):
    from aigc_core import Run

    code, _, err = cli(capsys, "generate", str(gan_run), "-n", "3", "--seed", "5", "--out", str(tmp_path / "cli"))
    assert code == 0, err
    by_cli = {p.name: p.read_bytes() for p in sorted((tmp_path / "cli").glob("*.png"))}
    assert len(by_cli) == 3

    _, files = Run.load(gan_run).inference(3, 5, out=tmp_path / "py")
    by_python = {p.name: p.read_bytes() for p in files}

    with _client(gan_run) as client:
        reply = client.post("/v1/models/digits-gan/generate", json={"n": 3, "seed": 5, "output": "files"})
        assert reply.status_code == 200, reply.text
    with zipfile.ZipFile(io.BytesIO(reply.content)) as zf:
        by_server = {name: zf.read(name) for name in zf.namelist() if name.endswith(".png")}

    assert by_cli == by_python == by_server
    assert len(set(by_cli.values())) == 3  # three different samples, not one repeated
    other, _ = Run.load(gan_run).inference(3, 6)  # another seed: other content
    assert [i.meta["seed"] for i in other.items] == [6, 6, 6]


def test_every_path_stamps_the_checkpoint_and_uses_the_configured_seed(text_run, tmp_path, capsys):
    from aigc_core import Run, RunDir

    inference = Run.load(text_run).inference
    content = inference.generate()
    fingerprint = RunDir(text_run).model_fingerprint()
    assert {i.meta["checkpoint_sha256"] for i in content.items} == {fingerprint}
    assert {i.meta["seed"] for i in content.items} == {11}  # generate.seed, not the run's seed 0
    code, _, err = cli(capsys, "generate", str(text_run), "--out", str(tmp_path / "cli"))
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "cli" / "samples.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == [i.data for i in content.items]


def test_streaming_gives_the_same_text_on_every_path_and_honours_generate_seed(text_run, capsys):
    from aigc_core import Run

    inference = Run.load(text_run).inference
    by_python = "".join(inference.stream())
    code, by_cli, err = cli(capsys, "generate", str(text_run), "--stream")
    assert code == 0, err
    with _client(text_run) as client:
        with client.stream("POST", "/v1/models/fake-text/stream", json={"seed": 11}) as reply:
            assert reply.status_code == 200
            pieces = [json.loads(line[len("data: "):])["text"] for line, prev in _with_event(reply.iter_lines())
                      if prev == "event: piece"]
    by_server = "".join(pieces)
    assert by_cli == by_python + "\n"
    assert by_server == by_python
    assert by_python.strip() == inference.generate(1).items[0].data  # streamed == generated, seed 11
    assert by_python != "".join(inference.stream(seed=0))  # the run's own seed would give other text


def _with_event(lines):
    previous = ""
    for line in lines:
        if line.startswith("data: "):
            yield line, previous
        previous = line


def test_run_loads_the_verified_model_and_refuses_a_tampered_one(gan_run, tmp_path):
    """``Run.load`` is the one loader: it describes the run, its generator is the verified model in
    eval mode, and a changed weight file is a one-line CheckpointError, not a model."""
    import shutil

    from aigc_core import CheckpointError, Run, RunDir

    run = Run.load(gan_run)
    assert (run.name, run.generator_name, run.modality) == ("digits-gan", "dcgan", "image")
    assert run.fingerprint == RunDir(gan_run).model_fingerprint()
    assert not run.generator.training
    assert [i.meta["checkpoint_sha256"] for i in run.generate(2, seed=1).items] == [run.fingerprint] * 2
    assert run.config["generator"]["name"] == "dcgan" and run.manifest["name"] == "digits-gan"
    copy = tmp_path / "copy"
    shutil.copytree(gan_run, copy)
    weights = copy / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="sha256"):
        Run.load(copy)


def test_items_carry_the_class_name_the_model_learnt(tmp_path):
    """The page, the CLI's metadata and the API all caption a class by its name, not its index."""
    from aigc_core import Pipeline, Run

    Pipeline.from_config({
        "name": "cgan", "seed": 0, "data": {"source": "sklearn-digits", "image_size": 8, "limit": 64},
        "generator": {"name": "dcgan", "size": "debug", "conditional": True},
        "train": {"max_steps": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [], "output": {"dir": str(tmp_path / "cgan")},
    }).fit()
    run = Run.load(tmp_path / "cgan")
    classes = run.generator.info["classes"]
    content = run.inference.generate(4, seed=1)
    assert [item.meta["label"] for item in content.items] == [0, 1, 2, 3]
    assert [item.meta["class"] for item in content.items] == [str(classes[i]) for i in range(4)]
