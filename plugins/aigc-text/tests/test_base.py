"""``generator.base`` for causal-lm: a transformers folder (model + tokenizer) or a hub id.

The bases are made here, tiny, with transformers' own ``save_pretrained``; the fixture
``no_network`` makes any socket use fail the test, which is how "offline fails fast" is checked
without timing.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from aigc_core import ConfigError
from aigc_core.store.config import build_params
from aigc_core.testing import hub_out_of_reach, refuse_unpickling, refused_network
from aigc_text.model import CausalLM
from aigc_core.testing import generate

INFO = {"modality": "text"}
TEXT = ["The quick brown fox jumps over the lazy dog. " * 4, "Pack my box with five dozen liquor jugs. " * 4]


def params(**values):
    return build_params(CausalLM.Params, {"size": "debug", **values}, "generator")


def save_base(folder, family: str = "gpt2"):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from aigc_text.tokenizer import train_bpe

    tok = train_bpe(TEXT, 280)
    torch.manual_seed(0)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                             max_position_embeddings=32))
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_base(tmp_path_factory.mktemp("base") / "gpt2-tiny")


@pytest.fixture
def no_network(monkeypatch):
    yield from refused_network(monkeypatch)


def test_transformers_folder_loads_with_its_tokenizer_and_generates(base_dir, no_network):
    from safetensors.torch import load_file

    gen = CausalLM.load_base(str(base_dir), params(), INFO)
    saved = load_file(str(base_dir / "model.safetensors"))
    assert torch.equal(gen.model.transformer.wte.weight, saved["transformer.wte.weight"])
    assert gen.context == 32 and gen.info["vocab"] == len(gen.tokenizer)
    content = generate(gen, 2, seed=0, max_new_tokens=4, prompts=["The "])
    assert [item.meta["new_tokens"] for item in content.items] == [4, 4]
    assert all(item.data.startswith("The ") for item in content.items)
    assert gen.adapter_targets == ("c_attn", "c_proj", "c_fc", "lm_head")


def test_without_data_info_the_base_loads_as_it_is(base_dir, no_network):
    """A finished personalised run loads its base with info None."""
    gen = CausalLM.load_base(str(base_dir), params(), None)
    assert gen.info == {"modality": "text", "vocab": len(gen.tokenizer)}
    assert len(generate(gen, 1, seed=0, max_new_tokens=2).items) == 1


def test_a_base_of_another_family_gets_its_own_targets(tmp_path, no_network):
    gen = CausalLM.load_base(str(save_base(tmp_path / "llama", family="llama")), params(), INFO)
    assert gen.adapter_targets == ("q_proj", "k_proj", "v_proj", "o_proj", "lm_head")
    assert len(generate(gen, 1, seed=0, max_new_tokens=2).items) == 1


def test_pretrained_is_the_old_name_of_base(base_dir, tmp_path, no_network):
    """Both load the same model; errors name the key the user wrote; both at once must agree."""
    class Source:
        info = INFO

    gen = CausalLM.build(params(pretrained=str(base_dir)), Source(), tmp_path)
    assert torch.equal(gen.model.lm_head.weight, CausalLM.load_base(str(base_dir), params(), INFO).model.lm_head.weight)
    with pytest.raises(ConfigError, match=r"^generator\.pretrained: .*nope: no such model directory$"):
        CausalLM.build(params(pretrained=str(tmp_path / "nope")), Source(), tmp_path)
    with pytest.raises(ConfigError, match=r"^generator\.pretrained: is the old name of generator\.base; give only "
                                          r"generator\.base$"):
        CausalLM.load_base(str(base_dir), params(pretrained=str(tmp_path / "other")), INFO)
    assert CausalLM.load_base(str(base_dir), params(pretrained=str(base_dir)), INFO) is not None


def test_missing_folder_and_folder_without_a_model(tmp_path, no_network):
    with pytest.raises(ConfigError, match=r"^generator\.base: .*nope: no such model directory$"):
        CausalLM.load_base(str(tmp_path / "nope"), params(), INFO)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^generator\.base: .*empty: not a model directory \(no config.json\)$"):
        CausalLM.load_base(str(tmp_path / "empty"), params(), INFO)


def test_a_pickle_only_folder_is_refused_and_never_unpickled(tmp_path, monkeypatch, no_network):
    folder = save_base(tmp_path / "pickled")
    from safetensors.torch import load_file

    # transformers 5 writes safetensors only; the old pickle layout is what a .bin checkpoint still is
    torch.save(load_file(str(folder / "model.safetensors")), str(folder / "pytorch_model.bin"))
    (folder / "model.safetensors").unlink()
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    refuse_unpickling(monkeypatch)
    with pytest.raises(ConfigError, match=r"^generator\.base: .*pickled: no safetensors weights here \(aigc never "
                                          r"loads pickled \.bin checkpoints"):
        CausalLM.load_base(str(folder), params(), INFO)


def cache_repo(cache, name: str):
    """A hub id as huggingface_hub caches it: snapshots/<commit>/ and refs/main naming the commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--aigc-test--{name}"
    folder = save_base(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return folder, commit


def test_a_cached_hub_id_loads_offline_without_the_network_and_records_its_revision(tmp_path, monkeypatch,
                                                                                   no_network):
    from huggingface_hub import constants

    folder, commit = cache_repo(tmp_path / "hf-cache", "gpt2-tiny")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = CausalLM.load_base("aigc-test/gpt2-tiny", params(), INFO)
    assert len(generate(gen, 1, seed=0, max_new_tokens=2).items) == 1
    record = CausalLM.base_record("aigc-test/gpt2-tiny")
    assert record["revision"] == commit and record["sha256"] == CausalLM.base_record(str(folder))["sha256"]
    assert constants.HF_HUB_OFFLINE is False  # the hub's switch is put back after loading


def test_a_cached_hub_id_with_only_a_pickle_is_refused(tmp_path, monkeypatch, no_network):
    """A hub id comes from the cache as is (no folder check first): transformers is asked for
    safetensors only, so a pickled snapshot fails in one line and is never unpickled."""
    from huggingface_hub import constants
    from safetensors.torch import load_file

    folder, _ = cache_repo(tmp_path / "hf-cache", "pickled")
    torch.save(load_file(str(folder / "model.safetensors")), str(folder / "pytorch_model.bin"))
    (folder / "model.safetensors").unlink()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refuse_unpickling(monkeypatch)
    with pytest.raises(ConfigError, match=r"^generator\.base: aigc-test/pickled: cannot load \("):
        CausalLM.load_base("aigc-test/pickled", params(), INFO)


@pytest.mark.parametrize("offline_env", [True, False])
def test_hub_id_offline_fails_at_once_without_the_network(monkeypatch, tmp_path, no_network, offline_env):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty cache
    hub_out_of_reach(monkeypatch, by_env=offline_env)
    with pytest.raises(ConfigError, match=r"^generator\.base: 'aigc-test/no-such-model' is not a local folder and the "
                                          r"Hugging Face hub cannot be reached \(offline\)"):
        CausalLM.load_base("aigc-test/no-such-model", params(), INFO)
    assert no_network == []


def test_base_record_is_the_sha256_of_the_weights(base_dir, tmp_path):
    record = CausalLM.base_record(str(base_dir))
    assert record["kind"] == "pretrained" and record["id"] == str(base_dir.resolve())
    assert record["weights"] == ["model.safetensors"] and len(record["sha256"]) == 64
    copy = tmp_path / "copy"
    shutil.copytree(base_dir, copy)
    assert CausalLM.base_record(str(copy))["sha256"] == record["sha256"]
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert CausalLM.base_record(str(copy))["sha256"] != record["sha256"]


def test_an_adapter_on_the_tied_output_layer_merges_into_a_model_that_makes_what_it_made(base_dir, tmp_path):
    """GPT-2's output layer shares its weight with the input embedding; the text adapter's default
    corrects it (what most of the gain on another text is). Merged, the correction must land on the
    output layer alone, and the saved model must load with the two apart."""
    from aigc_core.generation.adapters import AdapterSpec, attach, merge

    gen = CausalLM.load_base(str(base_dir), params(), INFO)
    assert gen.model.lm_head.weight is gen.model.transformer.wte.weight
    attach(gen, AdapterSpec(rank=2))  # the backend's default targets
    assert "lm_head" in gen.adapter_targets
    with torch.no_grad():  # a trained adapter: every correction away from zero
        for param in gen.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    gen.eval()
    ids = torch.tensor([[1, 5, 9, 20, 7]])
    with torch.no_grad():
        adapted = gen.model(input_ids=ids).logits
    merge(gen).eval()
    with torch.no_grad():
        assert torch.allclose(gen.model(input_ids=ids).logits, adapted, atol=1e-4)
    gen.save_artifact(tmp_path / "merged")
    # said in the config, not left to this transformers' check of the weights: other tools (and older
    # transformers) tie what the config says is tied, and would make the input embedding the output
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["tie_word_embeddings"] is False
    back = CausalLM.load_artifact(tmp_path / "merged", params())
    with torch.no_grad():
        assert torch.allclose(back.model(input_ids=ids).logits, adapted, atol=1e-4)
