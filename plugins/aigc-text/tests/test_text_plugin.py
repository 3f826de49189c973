"""The text plugin through the real pipeline: a debug GPT-2 trained for a few steps on a slice of
the Python docs, then its artifact, options, streaming, metrics and bad inputs."""

from __future__ import annotations

import json
import time

import pytest

from aigc_core import AigcError, CheckpointError, ConfigError, Pipeline
from aigc_core.cli import main as cli_main
from aigc_core.testing import generate, stream

TINY = {
    "name": "tiny-text", "seed": 0,
    "data": {"source": "python-docs", "max_chars": 30000, "batch_size": 8},
    "generator": {"name": "causal-lm", "size": "debug", "vocab_size": 300, "lr": 3e-3, "warmup_steps": 0},
    "train": {"max_epochs": 1, "max_steps": 12, "accelerator": "cpu", "devices": 1, "progress_bar": False,
              "sample_every_n_epochs": 0, "limit_val_batches": 2},
    "generate": {"num_samples": 3, "max_new_tokens": 12, "prompts": ["The "]},
    "postprocess": [{"name": "normalize"}],
    "metrics": [{"name": "text-likelihood", "max_chars": 2000}, {"name": "memorisation"}],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    Pipeline.from_config({**TINY, "output": {"dir": str(out)}}).run()
    return out


@pytest.fixture(scope="module")
def pipe(run_dir):
    return Pipeline.from_run_dir(run_dir)


def test_artifact_is_a_plain_hugging_face_model_directory(run_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = run_dir / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl", ".ckpt"))]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.n_positions == 64 and model.config.n_layer == 2
    assert len(tok) <= model.config.vocab_size == 300
    assert json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"] == tok.eos_token_id


def test_manifest_has_text_metrics(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    lik = manifest["metrics"]["text-likelihood"]
    assert lik["perplexity"] > 1 and 0 < lik["nats_per_char"] < lik["nll_per_token"]
    assert lik["nats_per_char"] * lik["chars"] == pytest.approx(lik["nll_per_token"] * lik["tokens"], rel=1e-3)
    # a few non-ASCII characters take more than one byte, so bits per byte sit just under nats/char / ln 2
    assert 0.95 * lik["nats_per_char"] / 0.693147 < lik["bits_per_byte"] <= lik["nats_per_char"] / 0.693147
    assert manifest["metrics"]["memorisation"]["samples"] == 3
    samples = (run_dir / "outputs" / "samples.jsonl").read_text().splitlines()
    assert all(json.loads(s)["text"].startswith("The ") for s in samples)


def test_same_seed_same_text_and_samples_depend_on_index_alone(pipe):
    a = pipe.generate(4, seed=5, temperature=1.0, max_new_tokens=10)
    b = pipe.generate(4, seed=5, temperature=1.0, max_new_tokens=10)
    c = pipe.generate(4, seed=6, temperature=1.0, max_new_tokens=10)
    assert [i.data for i in a] == [i.data for i in b]
    assert [i.data for i in a] != [i.data for i in c]
    alone = pipe.generate(1, seed=5, temperature=1.0, max_new_tokens=10, batch_size=1)
    assert alone.items[0].data == a.items[0].data


def test_batched_prompts_with_left_padding_match_single_prompts(pipe):
    prompts = ["A", "The with statement is"]
    both = pipe.generate(2, seed=1, prompts=prompts, temperature=0, max_new_tokens=8)
    for k, prompt in enumerate(prompts):
        single = pipe.generate(1, seed=1, prompts=[prompt], temperature=0, max_new_tokens=8)
        assert both.items[k].data == single.items[0].data
        assert both.items[k].meta["prompt"] == prompt and both.items[k].data.startswith(prompt)
    per_prompt = pipe.generate(99, seed=1, prompts=prompts, num_return_sequences=3, max_new_tokens=4)
    assert [i.meta["prompt"] for i in per_prompt] == [prompts[0]] * 3 + [prompts[1]] * 3


def test_sampling_options_change_text_and_penalty_applies(pipe):
    base = dict(seed=2, max_new_tokens=16)
    greedy = pipe.generate(1, temperature=0, **base).items[0].data
    top1 = pipe.generate(1, top_k=1, **base).items[0].data
    nucleus = pipe.generate(1, top_p=1e-6, **base).items[0].data
    assert greedy == top1 == nucleus  # top_k=1 and a tiny top_p both leave only the best token
    penalised = pipe.generate(1, temperature=0, repetition_penalty=3.0, **base).items[0].data
    assert penalised != greedy


def test_stream_gives_the_same_text_as_generate(pipe):
    opts = {**pipe.generate_options.__dict__, "prompts": ["The "], "temperature": 1.0, "max_new_tokens": 20}
    pieces = list(stream(pipe.generator, seed=9, **opts))
    assert pieces[0] == "The " and len(pieces) > 2
    assert "".join(pieces) == pipe.generate(1, seed=9, **{k: v for k, v in opts.items()}).items[0].data


def test_stop_string_cuts_generate_and_stream_alike(pipe):
    full = pipe.generate(1, seed=3, max_new_tokens=30).items[0].data
    continuation = full[len("The "):]
    stop = continuation[5:7]
    cut = pipe.generate(1, seed=3, max_new_tokens=30, stop=[stop]).items[0]
    assert cut.data == "The " + continuation[: continuation.find(stop)]
    assert cut.meta["finish_reason"] == "stop"
    opts = {**pipe.generate_options.__dict__, "max_new_tokens": 30, "stop": [stop]}
    assert "".join(stream(pipe.generator, seed=3, **opts)) == cut.data


def test_a_stop_string_that_never_comes_runs_to_max_new_tokens(pipe):
    item = pipe.generate(1, seed=3, max_new_tokens=15, stop=["\x07never\x07"]).items[0]
    assert item.meta["finish_reason"] in ("length", "eos")
    assert item.data == pipe.generate(1, seed=3, max_new_tokens=15).items[0].data


def test_generation_past_the_context_slides_the_window(pipe):
    item = pipe.generate(1, seed=4, max_new_tokens=100, temperature=0).items[0]  # context is 64
    assert item.meta["new_tokens"] == 100 or item.meta["finish_reason"] == "eos"


def test_bad_options_name_their_key(pipe):
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"^generate\.top_p: must be in \(0, 1\]"):
            pipe.generate(1, top_p=bad)
    with pytest.raises(ConfigError, match=r"^generate\.max_new_tokens"):
        pipe.generate(1, max_new_tokens=0)
    with pytest.raises(ConfigError, match=r"^generate\.prompts\[1\]: the prompt is \d+ tokens, longer than "
                                          r"the model's context of 64 tokens"):
        pipe.generate(1, prompts=["ok", "word " * 200])


def test_cli_streams_and_refuses_bad_top_p(run_dir, capsys):
    assert cli_main(["generate", str(run_dir), "max_new_tokens=8", "--prompt", "The ", "--stream",
                     "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("The ")
    assert cli_main(["generate", str(run_dir), "top_p=2", "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "generate.top_p" in err and "Traceback" not in err


def _broken(*a, **k):
    raise RuntimeError("boom in forward")


def _stalled(*a, **k):
    time.sleep(3)
    raise RuntimeError("late")


@pytest.mark.parametrize("forward, stream_timeout, message, within", [
    (_broken, 30, "text generation failed: RuntimeError: boom in forward", 5),
    (_stalled, 0.3, "stalled: no token for 0.3 s", 2.5),
], ids=["error", "stall"])
def test_stream_never_hangs_on_an_error_or_a_stall(run_dir, monkeypatch, forward, stream_timeout, message, within):
    gen = Pipeline.from_run_dir(run_dir).generator
    monkeypatch.setattr(gen.model, "forward", forward)
    t0 = time.perf_counter()
    with pytest.raises(AigcError, match=message):
        list(stream(gen, seed=0, stream_timeout=stream_timeout, prompts=["x"], max_new_tokens=5))
    assert time.perf_counter() - t0 < within


@pytest.mark.parametrize("offline_env", [True, False])
def test_hub_id_while_offline_fails_fast_and_says_so(monkeypatch, tmp_path, offline_env):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: the id cannot be there
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # no hint from the environment: the connectivity probe must find out quickly
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    cfg = {**TINY, "generator": {"name": "causal-lm", "pretrained": "aigc-test/no-such-model"},
           "output": {"dir": str(tmp_path / "run")}}
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^generator\.pretrained: 'aigc-test/no-such-model' .*cannot be reached"):
        Pipeline.from_config(cfg).fit()
    assert time.perf_counter() - t0 < 5


def test_missing_local_model_dir_is_named(tmp_path):
    cfg = {**TINY, "generator": {"name": "causal-lm", "pretrained": str(tmp_path / "nope")},
           "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(ConfigError, match=r"^generator\.pretrained: .*nope: no such model directory"):
        Pipeline.from_config(cfg).fit()


def test_tokenizer_directory_that_does_not_match_the_model(run_dir, tmp_path):
    from aigc_text.tokenizer import train_bpe

    from pydoc_data.topics import topics

    big = train_bpe(list(topics.values())[:20], 400)
    big.save_pretrained(str(tmp_path / "big-tokenizer"))
    assert len(big) > 300
    cfg = {**TINY, "generator": {"name": "causal-lm", "pretrained": str(run_dir / "model"),
                                 "tokenizer": str(tmp_path / "big-tokenizer")},
           "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(ConfigError, match=r"^generator\.tokenizer: the tokenizer has \d+ tokens but the model's "
                                          r"embedding has only 300 rows"):
        Pipeline.from_config(cfg).fit()
    # the same mismatch inside a run directory is a checkpoint error, not a crash
    import shutil

    from aigc_text.model import CausalLM

    bad = tmp_path / "bad-model"
    shutil.copytree(run_dir / "model", bad)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / "big-tokenizer" / name, bad / name)
    with pytest.raises(CheckpointError, match="do not belong together"):
        CausalLM.load_artifact(bad, CausalLM.Params())


def test_fine_tunes_from_a_local_pretrained_directory(run_dir, tmp_path):
    cfg = {**TINY, "generator": {"name": "causal-lm", "pretrained": str(run_dir / "model"), "lr": 1e-3},
           "train": {**TINY["train"], "max_steps": 2}, "metrics": [], "output": {"dir": str(tmp_path / "ft")}}
    pipe = Pipeline.from_config(cfg)
    pipe.fit()
    from safetensors.torch import load_file

    before = load_file(str(run_dir / "model" / "model.safetensors"))
    after = load_file(str(tmp_path / "ft" / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before)
    assert (tmp_path / "ft" / "model" / "tokenizer.json").read_bytes() == \
        (run_dir / "model" / "tokenizer.json").read_bytes()


def test_memorisation_finds_copied_spans_only():
    from aigc_text.metrics import copied_spans

    training = "It is a truth universally acknowledged, that a single man in possession of a good fortune."
    texts = ["Prefix! " + training[10:70] + " tail", training[:40] + " and then something new entirely", ""]
    assert copied_spans(texts, training, 50) == [True, False, False]


def test_start_offsets_give_the_same_samples_as_one_call(pipe):
    """What a sharded `aigc generate --devices K` relies on: sample i depends on (seed, i) only."""
    whole = generate(pipe.generator, 5, seed=4, max_new_tokens=6, batch_size=2)
    tail = generate(pipe.generator, 2, seed=4, max_new_tokens=6, batch_size=2, start=3)
    assert [i.data for i in tail.items] == [i.data for i in whole.items[3:]]
    assert [i.meta["index"] for i in tail.items] == [3, 4]
