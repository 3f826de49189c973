"""`aigc serve` over personalised runs: many adapters, one base, in memory once (issue 24, item 4).

Three LoRA adapters trained on one tiny GAN run are served together: the base is loaded once and
each run's adapter is attached to it under its own name; a request picks one (the `adapter` field
on the base's model, or the personalised run's own name) and gets the bytes that run gives served
alone and through `aigc generate`. Requests for different adapters never share a batch, and the
adapter is selected and used under one lock, so no request sees another's weights.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from aigc_testutil import cli, tiny_gan_config
from server_kit import LiveServer, personalised_gan_runs, tiny_gan_run

BASE = "digits-gan"
ADAPTERS = ["ink-a", "ink-b", "ink-c"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp()
    base = tiny_gan_run(root / "server-gan", name=BASE)
    return {BASE: base, **dict(zip(ADAPTERS, personalised_gan_runs(base, root / "adapters", ADAPTERS)))}


@pytest.fixture(scope="module")
def shared(runs):
    from aigc_core.server.models import load_models

    return load_models([runs[name] for name in ADAPTERS])


def _client(models):
    from fastapi.testclient import TestClient

    from aigc_core.server import create_app

    return TestClient(create_app(models), base_url="http://127.0.0.1")


def _pngs(reply) -> dict[str, bytes]:
    assert reply.status_code == 200, reply.text
    return {i["filename"]: base64.b64decode(i["data_base64"]) for i in reply.json()["items"]}


def _unique_tensor_bytes(models) -> int:
    seen, total = set(), 0
    for model in models:
        for tensor in [*model.run.generator.parameters(), *model.run.generator.buffers()]:
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
    return total


def test_personalised_runs_on_one_base_share_one_base_generator(runs, shared):
    from aigc_core import Run
    from aigc_core.generation.adapters import read_adapter

    assert list(shared) == [BASE, *ADAPTERS]  # the base is served too, before its adapters
    assert len({id(m.run.generator) for m in shared.values()}) == 1  # one module in memory
    assert len({id(m.lock) for m in shared.values()}) == 1  # and one lock over it
    assert shared[BASE].describe()["adapters"] == ADAPTERS
    assert {shared[name].describe()["base"] for name in ADAPTERS} == {BASE}
    plain = Run.load(runs[BASE]).generator
    base_bytes = sum(t.numel() * t.element_size() for t in [*plain.parameters(), *plain.buffers()])
    adapter_bytes = sum(t.numel() * t.element_size() for name in ADAPTERS
                        for t in read_adapter(runs[name] / "model")[2].values())
    # every tensor in memory is the base's once plus each adapter's own (G and G_ema carry each adapter)
    assert _unique_tensor_bytes(shared.values()) <= base_bytes + 2 * adapter_bytes


def test_a_base_given_on_the_command_line_is_the_one_its_adapters_share(runs):
    from aigc_core.server.models import load_models

    models = load_models([str(runs["ink-b"]), f"digits={runs[BASE]}", str(runs["ink-a"])])
    assert list(models) == ["digits", "ink-b", "ink-a"]  # loaded before its first adapter
    assert models["digits"].describe()["adapters"] == ["ink-a", "ink-b"]
    assert len({id(m.run.generator) for m in models.values()}) == 1


def test_each_adapter_gives_the_bytes_of_its_run_served_alone_and_of_aigc_generate(runs, shared, tmp_path, capsys):
    request = {"n": 3, "seed": 5}
    with _client(shared) as client:
        through_base = {name: _pngs(client.post(f"/v1/models/{BASE}/generate", json={**request, "adapter": name}))
                        for name in ADAPTERS}
        by_name = {name: _pngs(client.post(f"/v1/models/{name}/generate", json=request)) for name in ADAPTERS}
        base_alone_shared = _pngs(client.post(f"/v1/models/{BASE}/generate", json={**request, "adapter": None}))
        reply = client.post(f"/v1/models/{BASE}/generate", json={**request, "adapter": "ink-a"})
        assert reply.json()["model"] == BASE and reply.json()["adapter"] == "ink-a"
    for name in [BASE, *ADAPTERS]:
        with _client([runs[name]]) as client:
            alone = _pngs(client.post(f"/v1/models/{name}/generate", json=request))
        code, _, err = cli(capsys, "generate", str(runs[name]), "-n", "3", "--seed", "5", "--out", str(tmp_path / name))
        assert code == 0, err
        by_cli = {p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.png"))}
        assert alone == by_cli, name
        if name == BASE:
            assert base_alone_shared == alone  # the adapters off: the base's own bytes
        else:
            assert through_base[name] == by_name[name] == alone, name
    made = [tuple(by_name[name].values()) for name in ADAPTERS] + [tuple(base_alone_shared.values())]
    assert len(set(made)) == 4  # each adapter changes the output its own way


def _active(generator) -> tuple:
    """Which adapter the LoRA layers of ``generator`` would use now (None: the base alone)."""
    layer = next(m for _, m in generator.named_modules() if hasattr(m, "lora_A"))
    return None if layer.disable_adapters else tuple(layer.active_adapters)


def test_requests_for_different_adapters_never_share_a_batch_nor_switch_mid_generation(runs, shared):
    """Slow calls (50 ms each) for three adapters and the base at once: each call sees one adapter
    from start to end, and each reply holds its own adapter's bytes, seeded or not."""
    from aigc_core.server import ServerSettings, create_app

    generator = shared[BASE].run.generator
    seen, original = [], generator.generate

    def slow(*args, **kwargs):
        before = _active(generator)
        time.sleep(0.05)  # another adapter's batch would switch the layers here, without the shared lock
        content = original(*args, **kwargs)
        seen.append((before, _active(generator)))
        return content

    with _client(shared) as client:
        expected = {name: _pngs(client.post(f"/v1/models/{name}/generate", json={"n": 2, "seed": 9}))
                    for name in [BASE, *ADAPTERS]}
    generator.generate = slow
    try:
        app = create_app(shared, ServerSettings(batch_wait_ms=100))
        with LiveServer(app) as live:
            def call(job):
                name, seed = job
                body = {"n": 2, "seed": seed, "adapter": None if name == BASE else name}
                with httpx.Client(base_url=live.url, timeout=30) as c:
                    return name, c.post(f"/v1/models/{BASE}/generate", json=body)

            jobs = [(name, seed) for name in [BASE, *ADAPTERS] for seed in (9, None)] * 2
            with ThreadPoolExecutor(len(jobs)) as pool:
                replies = list(pool.map(call, jobs))
    finally:
        del generator.generate
    assert seen and all(before == after for before, after in seen), seen
    assert len({before for before, _ in seen}) == 4
    for (name, seed), (_, reply) in zip(jobs, replies):
        assert reply.status_code == 200, reply.text
        if seed is not None:
            assert _pngs(reply) == expected[name], name
        else:  # unseeded requests merge only with their own adapter's: two of them, 2 samples each
            assert reply.json()["batch_samples"] in (2, 4), name


def test_an_adapter_that_is_not_served_is_a_422_naming_the_field(shared):
    with _client(shared) as client:
        reply = client.post(f"/v1/models/{BASE}/generate", json={"n": 1, "adapter": "ink-z"})
        assert reply.status_code == 422
        assert reply.json()["field"] == "adapter"
        assert "'ink-z'" in reply.json()["error"] and "ink-a, ink-b, ink-c" in reply.json()["error"]
        assert "\n" not in reply.json()["error"]
        reply = client.post("/v1/models/ink-a/generate", json={"n": 1, "adapter": "ink-b"})
        assert reply.status_code == 422 and reply.json()["field"] == "adapter"
        assert BASE in reply.json()["error"]
        reply = client.post(f"/v1/models/{BASE}/stream", json={"adapter": "ink-z"})
        assert reply.status_code == 422 and reply.json()["field"] == "adapter"


def test_a_plain_model_refuses_an_adapter(runs):
    with _client([runs[BASE]]) as client:
        reply = client.post(f"/v1/models/{BASE}/generate", json={"n": 1, "adapter": "ink-a"})
        assert reply.status_code == 422 and reply.json()["field"] == "adapter"
        assert client.get(f"/v1/models/{BASE}").json()["adapters"] == []


def test_adapters_on_different_bases_are_each_served_on_their_own_base(runs, tmp_path):
    from aigc_core.server.models import load_models

    from aigc_core import Pipeline

    other_base = tmp_path / "other-gan"  # another seed: other weights (the same weights would be one base)
    Pipeline.from_config(tiny_gan_config(other_base, name="other-gan", seed=7, postprocess=[])).fit()
    (other,) = personalised_gan_runs(other_base, tmp_path, ["other-ink"])
    models = load_models([runs["ink-a"], other, runs["ink-b"]])
    assert list(models) == [BASE, "ink-a", "other-gan", "other-ink", "ink-b"]
    assert models[BASE].describe()["adapters"] == ["ink-a", "ink-b"]
    assert models["other-gan"].describe()["adapters"] == ["other-ink"]
    assert models[BASE].run.generator is models["ink-b"].run.generator
    assert models[BASE].run.generator is not models["other-gan"].run.generator
    with _client(models) as client:
        pair = [_pngs(client.post(f"/v1/models/{base}/generate", json={"n": 1, "seed": 2, "adapter": name}))
                for base, name in [(BASE, "ink-a"), ("other-gan", "other-ink")]]
    with _client([other]) as client:
        alone = _pngs(client.post("/v1/models/other-ink/generate", json={"n": 1, "seed": 2}))
    assert pair[1] == alone and pair[0] != pair[1]


def test_an_adapter_whose_base_run_was_replaced_is_refused_in_one_line(runs, tmp_path, capsys):
    """The folder its config names holds another model now (trained again): refused before loading,
    given alone or beside that folder's run, rather than attached to weights it was not made for."""
    from aigc_core import Pipeline

    replaced = tmp_path / "replaced-gan"
    shutil.copytree(runs[BASE], replaced)
    (stale,) = personalised_gan_runs(replaced, tmp_path, ["stale"])
    shutil.rmtree(replaced)
    Pipeline.from_config(tiny_gan_config(replaced, name=BASE, seed=7, postprocess=[])).fit()
    for served in [[stale], [replaced, stale]]:
        code, _, err = cli(capsys, "serve", *map(str, served), "--port", "0")
        assert code == 2, err
        line = err.strip().splitlines()[-1]
        assert str(stale) in line and "fingerprint" in line and "generator.base" in line and "two runs are named" not in line
        assert "Traceback" not in err and "http://" not in err


def test_serving_a_personalised_run_whose_base_is_gone_is_one_line_and_exit_2(runs, tmp_path, capsys):
    gone = tmp_path / "gone-gan"
    shutil.copytree(runs[BASE], gone)
    (orphan,) = personalised_gan_runs(gone, tmp_path, ["orphan"])
    shutil.rmtree(gone)
    # alone, and beside a run on a base of the same fingerprint (the copy's): no base dir, no load
    for served in [[orphan], [runs["ink-a"], orphan]]:
        code, out, err = cli(capsys, "serve", *map(str, served), "--port", "0")
        assert code == 2, err
        line = err.strip().splitlines()[-1]
        assert str(orphan) in line and "generator.base" in line and str(gone) in line
        assert "Traceback" not in err and "http://" not in err  # refused before binding


def test_the_lock_is_what_keeps_adapters_apart(shared):
    """The one lock is taken by every model of the group (``turn``), so a thread holding it for one
    adapter keeps every other adapter's request waiting."""
    held, released = threading.Event(), threading.Event()

    def hold():
        with shared["ink-a"].turn():
            held.set()
            released.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        assert not shared["ink-b"].lock.acquire(timeout=0.1)
        assert _active(shared[BASE].run.generator) == (shared["ink-a"].adapter,)
    finally:
        released.set()
        thread.join()
    with shared[BASE].turn():
        assert _active(shared[BASE].run.generator) is None


def test_each_turn_puts_back_the_generator_parameters_its_run_loads_with(runs, shared):
    """A personalised run loaded alone carries its own config's generator parameters (its base's,
    with what its config changes); on the shared base each model's turn gives it those."""
    from aigc_core import Run

    generator = shared[BASE].run.generator
    for name in [*ADAPTERS, BASE, ADAPTERS[0]]:
        with shared[name].turn():
            alone = Run.load(runs[name]).generator.params
            assert generator.params.model_dump() == alone.model_dump(), name
            assert generator.params is shared[name].params
    assert shared["ink-b"].params.lr_g == 1e-3 != shared[BASE].params.lr_g  # ink-b's config changes it


def test_streams_for_two_adapters_at_once_each_give_their_adapters_text(tmp_path_factory):
    """Two text streams on one base, for different adapters, at once. aigc-text decodes in a thread
    of its own, so a lock taken per piece would let the other stream switch the adapter under it:
    a stream on a shared base holds the base to its end, and each text is the one it gives alone."""
    import json

    import torch

    from aigc_core.server import ServerSettings, create_app
    from aigc_core.server.models import load_models
    from server_kit import personalised_text_runs, tiny_text_run

    root = tmp_path_factory.getbasetemp()
    base = tiny_text_run(root / "page-tiny-lm")
    if base is None:
        pytest.skip("the aigc-text plugin (causal-lm) is not installed")
    runs = personalised_text_runs(base, root / "text-adapters", ["lm-a", "lm-b"])
    models = load_models(runs)
    base_name = next(name for name, m in models.items() if m.adapters)
    torch.manual_seed(0)
    with torch.no_grad():  # two training steps barely move an adapter: make each one count
        for module in models[base_name].run.generator.modules():
            if hasattr(module, "lora_B"):
                for layer in module.lora_B.values():
                    layer.weight.normal_(0, 2.0)

    def stream(live, name):
        body = {"seed": 4, "options": {"max_new_tokens": 24}, "adapter": name}
        with httpx.Client(base_url=live.url, timeout=60) as c:
            reply = c.post(f"/v1/models/{base_name}/stream", json=body)
        assert reply.status_code == 200, reply.text
        events = [block.split("\n", 1) for block in reply.text.strip().split("\n\n")]
        return "".join(json.loads(data[6:])["text"] for kind, data in events if kind == "event: piece")

    names = ["lm-a", "lm-b", "lm-a", "lm-b"]
    with LiveServer(create_app(models, ServerSettings(max_streams=4))) as live:
        alone = {name: stream(live, name) for name in ("lm-a", "lm-b")}
        with ThreadPoolExecutor(len(names)) as pool:
            together = list(pool.map(lambda name: stream(live, name), names))
    assert alone["lm-a"] != alone["lm-b"]  # the adapters differ, so a switched step would show
    assert together == [alone[name] for name in names]
