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


# -- what Inference does once, so that no generator does it (plugin API 4) ----------------------


def _recorder_classes():
    """A generator that records, at each call, its modules' modes, whether autograd is on and the
    options it was given; it switches nothing itself, as a plugin API 4 generator must not."""
    from typing import Optional

    import torch
    from torch import nn

    from aigc_core import Content, Field, Generator, Item, NoParams, Params

    class Opts(Params):
        label: Optional[int] = Field(None, ge=0)
        scale: float = Field(1.0, gt=0)

    class NamedOpts(Params):
        label: Optional[str] = None

    class Recorder(Generator):
        modality = "text"
        streams = True
        GenerateOptions = Opts

        def __init__(self, num_classes: int = 3):
            super().__init__(NoParams(), {})
            self.body = nn.Linear(2, 2)
            self.norm = nn.BatchNorm1d(2)
            self.num_classes = num_classes
            self.seen: list[dict] = []

        def _record(self, options) -> None:
            self.seen.append({"modes": [m.training for m in self.modules()], "grad": torch.is_grad_enabled(),
                              "options": options})

        def generate(self, n, seed, options):
            self._record(options)
            return Content("text", [Item(f"{seed}:{i}", {"index": i}) for i in range(n)])

        def stream(self, seed, options):
            for i in range(2):
                self._record(options)
                yield f"{seed}:{i} "

    class Named(Recorder):
        GenerateOptions = NamedOpts
        classes = ("sine", "square", "saw")

    return Opts, Recorder, Named


def _inference(generator, validate=None):
    from aigc_core import Inference
    from aigc_core.contract.params import build_params

    validate = validate or (lambda values, prefix: build_params(type(generator).GenerateOptions, values, prefix))
    return Inference(generator, generator_name="recorder", run_name="r", modality="text", validate_options=validate,
                     defaults={"scale": 2.0} if "scale" in type(generator).GenerateOptions.model_fields else {},
                     num_samples=2, seed=5)


def test_inference_holds_eval_mode_and_no_grad_and_gives_every_module_its_mode_back():
    """A generator in training mode (one norm layer kept in eval, as adapters keep batch norms) and
    called with autograd on generates in eval mode without autograd on every path, and gets each
    module's own mode back: the generator itself switches nothing."""
    import torch

    from aigc_core.testing import generate, stream

    _, Recorder, _ = _recorder_classes()
    gen = Recorder()
    gen.train()
    gen.norm.eval()
    before = [m.training for m in gen.modules()]
    assert before == [True, True, False]
    inference = _inference(gen)
    with torch.enable_grad():
        inference.generate(2, seed=1)
        assert "".join(inference.stream(seed=1)) == "1:0 1:1 "
        generate(gen, 1, seed=1)  # a bare model in a plugin's tests
        list(stream(gen, seed=1))
        assert torch.is_grad_enabled()
    assert len(gen.seen) == 6
    assert all(seen["modes"] == [False, False, False] and not seen["grad"] for seen in gen.seen), gen.seen
    assert [m.training for m in gen.modules()] == before


def test_options_are_validated_once_and_arrive_as_the_validated_object():
    from aigc_core.contract.params import build_params

    Opts, Recorder, _ = _recorder_classes()
    calls = []

    def validate(values, prefix):
        calls.append(dict(values))
        return build_params(Opts, values, prefix)

    gen = Recorder()
    inference = _inference(gen, validate)
    options = inference.options({"scale": 3.0})  # what the server and sharding do, once
    inference.generate(1, seed=1, options=options)
    assert gen.seen[-1]["options"] is options and len(calls) == 1
    inference.generate(1, seed=1)  # keywords (the Python API): merged with the run's defaults, validated here
    assert gen.seen[-1]["options"] == Opts(scale=2.0) and isinstance(gen.seen[-1]["options"], Opts)
    inference.generate(1, seed=1, scale=4.0)
    assert gen.seen[-1]["options"] == Opts(scale=4.0) and len(calls) == 3
    with pytest.raises(TypeError, match="not both"):
        inference.generate(1, seed=1, options=options, scale=4.0)


def test_inference_checks_the_label_once_for_every_generator():
    """The label is checked against ``num_classes`` before the generator runs (it never sees a bad
    one); a label option typed as text names a class (``classes``) or gives its index, and the
    generator receives the index."""
    from aigc_core import ConfigError
    from aigc_core.testing import generate

    _, Recorder, Named = _recorder_classes()
    gen = Recorder(num_classes=3)
    inference = _inference(gen)
    inference.generate(1, seed=1, label=2)
    assert gen.seen[-1]["options"].label == 2
    for model, label, message in [
            (gen, 3, "generate.label: label 3 is not a class this model was trained on (3 classes)"),
            (Recorder(num_classes=0), 0, "generate.label: label 0 is not a class this model was trained on (no classes)")]:
        with pytest.raises(ConfigError) as error:
            _inference(model).generate(1, seed=1, label=label)
        assert str(error.value) == message
    assert len(gen.seen) == 1  # the generator was never called with the bad label
    named = Named(num_classes=3)
    assert [generate(named, 1, label=label) and named.seen[-1]["options"].label for label in ("square", "2", 0)] \
        == [1, 2, 0]
    with pytest.raises(ConfigError) as error:
        generate(named, 1, label="flute")
    assert str(error.value) == "generate.label: 'flute' is not a class this model was trained on (classes: sine, square, saw)"


def test_the_server_has_no_seed_bound_or_fresh_seed_of_its_own(text_run, monkeypatch):
    """The server asks ``aigc_core.generation.inference`` for the seed bound and for a fresh seed: changing them
    there changes what the server accepts and draws (a bound of its own would not move)."""
    import aigc_core.generation.inference as inference_module

    class Fixed:
        @staticmethod
        def randrange(stop):
            return 42

    monkeypatch.setattr(inference_module, "MAX_SEED", 100)
    monkeypatch.setattr(inference_module, "_fresh", Fixed())
    with _client(text_run) as client:
        refused = client.post("/v1/models/fake-text/generate", json={"seed": 101})
        assert refused.status_code == 422
        assert refused.json()["error"] == "seed: must be in [0, 100], got 101"
        assert client.post("/v1/models/fake-text/generate", json={"seed": 100}).status_code == 200
        assert client.post("/v1/models/fake-text/stream", json={"seed": 100, "n": 2}).status_code == 422
        assert client.post("/v1/models/fake-text/generate", json={}).json()["seed"] == 42
        with client.stream("POST", "/v1/models/fake-text/stream", json={}) as reply:
            start = next(line for line in reply.iter_lines() if line.startswith("data: "))
        assert json.loads(start[len("data: "):])["seed"] == 42


def test_no_bundled_generator_switches_modes_autograd_or_checks_labels_itself():
    """What ``Inference`` owns stays out of every bundled plugin's ``generate`` and ``stream``."""
    import ast

    root = Path(__file__).resolve().parents[1] / "plugins"
    found = []
    for path in sorted(root.glob("aigc-*/aigc_*/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in ("generate", "stream"):
                args = [a.arg for a in node.args.args]
                wanted = ["self", "n", "seed", "options"] if node.name == "generate" else ["self", "seed", "options"]
                if args[:len(wanted)] != wanted or node.args.kwarg is not None:
                    found.append(f"{path.name}:{node.lineno} {node.name}({', '.join(args)})")
                text = ast.unparse(node)
                for banned in (".eval()", ".train(", "no_grad", "inference_mode", "generate.label"):
                    if banned in text:
                        found.append(f"{path.name}:{node.lineno} {node.name} has {banned}")
    assert not found, found
