"""The HTTP API through a real uvicorn on loopback: generation, batching, limits, security,
streams. One tiny trained GAN and a fake streaming text model serve every test."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from aigc_core.contract.errors import UsageError
from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, counters, fake_text_run, tiny_gan_run, tiny_text_run

GAN = "digits-gan"
TEXT = "fake-text"


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory):
    return tiny_gan_run(tmp_path_factory.getbasetemp() / "server-gan", name=GAN)


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    return fake_text_run(tmp_path_factory.getbasetemp() / "server-fake-text", name=TEXT)


@pytest.fixture(scope="module")
def server(gan_run, text_run):
    app = create_app([gan_run, text_run], ServerSettings(batch_wait_ms=30, max_samples=16, max_prompt_chars=100))
    with LiveServer(app) as live:
        yield live


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _png_pixels(b64: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return np.asarray(img)


# -- models and schema -------------------------------------------------------------------------


def test_models_list_modality_and_options_from_the_options_schema(client):
    body = client.get("/v1/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert models[GAN]["modality"] == "image" and models[GAN]["stream"] is False
    options = models[GAN]["options"]["properties"]  # the JSON Schema of DCGAN's GenerateOptions
    assert options["use_ema"]["type"] == "boolean" and options["use_ema"]["default"] is True
    assert {"type": "integer", "minimum": 0} in options["label"]["anyOf"] and {"type": "null"} in options["label"]["anyOf"]
    assert options["truncation"]["exclusiveMinimum"] == 0 and options["truncation"]["description"]
    assert models[TEXT]["stream"] is True and models[TEXT]["modality"] == "text"
    assert body["limits"]["max_samples"] == 16
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}/generate", "/v1/models/{name}/stream", "/healthz", "/readyz"} <= set(paths)


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert set(ready.json()["models"]) == {GAN, TEXT}


# -- generation --------------------------------------------------------------------------------


def test_images_are_pngs_equal_to_the_pipeline_and_repeatable(client, gan_run):
    from aigc_core import Pipeline
    from aigc_core.helpers.imaging import to_uint8_hwc

    first = client.post(f"/v1/models/{GAN}/generate", json={"n": 3, "seed": 5}).json()
    again = client.post(f"/v1/models/{GAN}/generate", json={"n": 3, "seed": 5}).json()
    assert first["seed"] == 5 and len(first["items"]) == 3
    assert [i["data_base64"] for i in first["items"]] == [i["data_base64"] for i in again["items"]]
    expected = Pipeline.from_run_dir(gan_run).generate(3, seed=5)
    for item, ref in zip(first["items"], expected.items):
        assert item["media_type"] == "image/png"
        assert item["meta"]["seed"] == 5 and item["meta"]["run"] == GAN
        np.testing.assert_array_equal(_png_pixels(item["data_base64"]), to_uint8_hwc(ref.data))


def test_files_output_single_file_or_zip_with_metadata(client):
    one = client.post(f"/v1/models/{GAN}/generate", json={"n": 1, "seed": 2, "output": "files"})
    assert one.headers["content-type"] == "image/png" and one.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sample_00000.png" in one.headers["content-disposition"]
    many = client.post(f"/v1/models/{TEXT}/generate", json={"n": 2, "seed": 2, "output": "files"})
    assert many.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(many.content)) as zf:
        assert sorted(zf.namelist()) == ["meta.json", "sample_00000.txt", "sample_00001.txt"]
        meta = json.loads(zf.read("meta.json"))
        assert meta["seed"] == 2 and [m["file"] for m in meta["items"]] == ["sample_00000.txt", "sample_00001.txt"]


def test_concurrent_requests_are_micro_batched_and_stay_reproducible(server, gan_run):
    from aigc_core import Pipeline
    from aigc_core.helpers.imaging import to_uint8_hwc

    def call(_):
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return c.post(f"/v1/models/{GAN}/generate", json={"n": 2}).json()

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(call, range(6)))
    assert max(r["batch_samples"] for r in replies) > 2  # some requests shared a generate call
    keys = [(i["meta"]["seed"], i["meta"]["index"]) for r in replies for i in r["items"]]
    assert len(set(keys)) == len(keys) == 12  # nobody got someone else's items
    item = max((i for r in replies for i in r["items"]), key=lambda i: i["meta"]["index"])
    seed, index = item["meta"]["seed"], item["meta"]["index"]
    remade = Pipeline.from_run_dir(gan_run).generate(index + 1, seed=seed).items[index]
    np.testing.assert_array_equal(_png_pixels(item["data_base64"]), to_uint8_hwc(remade.data))


def test_full_queue_answers_429_with_retry_after(text_run):
    app = create_app([text_run], ServerSettings(queue_size=1, max_batch=1, batch_wait_ms=0))
    slow = {"n": 1, "options": {"delay_s": 0.4}}
    with LiveServer(app) as live:
        def call(_):
            with httpx.Client(base_url=live.url, timeout=30) as c:
                return c.post(f"/v1/models/{TEXT}/generate", json=slow)

        with ThreadPoolExecutor(5) as pool:
            replies = list(pool.map(call, range(5)))
    codes = sorted(r.status_code for r in replies)
    assert 200 in codes and 429 in codes and set(codes) <= {200, 429}
    refused = next(r for r in replies if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and "queue is full" in refused.json()["error"]


def test_slow_generation_times_out_with_504(text_run):
    app = create_app([text_run], ServerSettings(timeout_s=0.2))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        reply = c.post(f"/v1/models/{TEXT}/generate", json={"options": {"delay_s": 0.6}})
        assert reply.status_code == 504 and "0.2 s" in reply.json()["error"]
        # the worker finishes the abandoned call, then goes on serving
        time.sleep(0.6)
        assert c.post(f"/v1/models/{TEXT}/generate", json={"n": 1}).status_code == 200


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status, needle",
    [
        (b'{"n": 2,', 400, "malformed JSON"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b'{"n": "two"}', 422, "n: "),
        (b'{"n": 17}', 422, "n: must be between 1 and 16"),
        (b'{"n": 0}', 422, "n: must be between 1 and 16"),
        (b'{"seed": -1}', 422, "seed: must be in"),
        (b'{"count": 2}', 422, "count: unknown field"),
        (b'{"options": {"use_ema": "maybe"}}', 422, "options.use_ema: expected true or false"),
        (b'{"options": {"batch_size": 0}}', 422, "options.batch_size: must be at least 1"),
        (b'{"options": {"batch_size": 100000}}', 422, "options.batch_size: this server allows at most"),
        (b'{"options": {"label": 3}}', 422, "options.label: label 3 is not a class"),
        (b'{"options": {"colour": 1}}', 422, "options.colour: unknown key"),
    ],
)
def test_bad_requests_get_a_clear_one_line_error(client, body, status, needle):
    reply = client.post(f"/v1/models/{GAN}/generate", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    assert needle in reply.json()["error"] and "\n" not in reply.json()["error"]


def test_text_option_limits(client):
    reply = client.post(f"/v1/models/{TEXT}/generate", json={"options": {"prompt": "x" * 101}})
    assert reply.status_code == 422 and reply.json()["field"] == "options.prompt"
    assert "at most 100 characters" in reply.json()["error"]
    reply = client.post(f"/v1/models/{TEXT}/generate", json={"options": {"max_new_tokens": 5000}})
    assert reply.status_code == 422 and "at most 1024" in reply.json()["error"]


def test_unknown_model_is_404_naming_the_served_ones(client):
    reply = client.post("/v1/models/nope/generate", json={})
    assert reply.status_code == 404 and GAN in reply.json()["error"]
    assert client.get("/v1/models/nope").status_code == 404


def test_huge_body_is_413_by_header_and_by_counting(client):
    huge = json.dumps({"options": {"prompt": "x" * 200_000}}).encode()
    reply = client.post(f"/v1/models/{TEXT}/generate", content=huge, headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "65536 bytes" in reply.json()["error"]

    def chunks():  # no Content-Length: the server has to count
        for _ in range(100):
            yield b"x" * 1024

    reply = client.post(f"/v1/models/{TEXT}/generate", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413


def test_stream_of_a_model_that_cannot_stream_is_422(client):
    reply = client.post(f"/v1/models/{GAN}/stream", json={})
    assert reply.status_code == 422 and "does not stream" in reply.json()["error"]


# -- security ----------------------------------------------------------------------------------


def test_public_bind_without_a_key_is_refused(monkeypatch):
    monkeypatch.delenv("AIGC_API_KEY", raising=False)
    with pytest.raises(UsageError, match="AIGC_API_KEY"):
        ServerSettings(host="0.0.0.0")
    ServerSettings(host="::1")  # loopback needs none


def test_api_key_is_required_on_every_request_of_a_public_bind(monkeypatch, text_run):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIGC_TEST_KEY", "s3cret-key-0123456789")
    app = create_app([text_run], ServerSettings(host="0.0.0.0", api_key_env="AIGC_TEST_KEY"))
    with TestClient(app) as c:
        for path in ("/", "/healthz", "/v1/models"):
            reply = c.get(path)
            assert reply.status_code == 401 and "missing API key" in reply.json()["error"]
            assert reply.headers["www-authenticate"].startswith("Basic")
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret-key-012345678z"}).status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 401
        assert c.post(f"/v1/models/{TEXT}/generate", json={}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret-key-0123456789"}).status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret-key-0123456789"}).status_code == 200
        basic = base64.b64encode(b"anyone:s3cret-key-0123456789").decode()
        assert c.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_cors_is_off_unless_configured(client, text_run):
    from fastapi.testclient import TestClient

    origin = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/v1/models", headers=origin).headers
    app = create_app([text_run], ServerSettings(cors_origins=["http://elsewhere.example"]))
    with TestClient(app, base_url="http://localhost") as c:  # a loopback server answers loopback names only
        assert c.get("/v1/models", headers=origin).headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert text and "http://" not in text and "https://" not in text
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/static/../settings.py").status_code == 404


# -- streams -----------------------------------------------------------------------------------


def _events(lines):
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def test_stream_sends_the_same_text_as_generate(client):
    body = {"seed": 9, "options": {"prompt": "once", "max_new_tokens": 5}}
    with client.stream("POST", f"/v1/models/{TEXT}/stream", json=body) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = list(_events(reply.iter_lines()))
    kinds = [e for e, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("piece") == 6
    streamed = "".join(d["text"] for e, d in events if e == "piece")
    generated = client.post(f"/v1/models/{TEXT}/generate", json={"n": 1, **body}).json()["items"][0]["text"]
    assert streamed == generated


def test_stream_of_n_texts_sends_text_i_as_the_stream_of_seed_plus_i(client):
    """The page's Samples: 3 with streaming on: three texts, each told apart by its index, each
    the text one request with seed + index makes, so a box can be remade alone."""
    body = {"n": 3, "seed": 9, "options": {"prompt": "once", "max_new_tokens": 4}}
    with client.stream("POST", f"/v1/models/{TEXT}/stream", json=body) as reply:
        events = list(_events(reply.iter_lines()))
    assert events[0] == ("start", {"model": TEXT, "seed": 9, "n": 3}) and events[-1][0] == "done"
    texts: dict[int, str] = {}
    for event, data in events:
        if event == "piece":
            assert data["seed"] == 9 + data["index"]
            texts[data["index"]] = texts.get(data["index"], "") + data["text"]
    assert sorted(texts) == [0, 1, 2] and len(set(texts.values())) == 3
    for index, text in texts.items():
        alone = {"n": 1, "seed": 9 + index, "options": body["options"]}
        assert client.post(f"/v1/models/{TEXT}/generate", json=alone).json()["items"][0]["text"] == text
    too_many = client.post(f"/v1/models/{TEXT}/stream", json={"n": 10_000})
    assert too_many.status_code == 422 and too_many.json()["field"] == "n"


def test_client_leaving_mid_stream_stops_generation_and_others_are_served(server):
    closed_before = counters.closed
    body = {"seed": 1, "options": {"max_new_tokens": 1000, "delay_s": 0.02}}  # 20 s if never stopped
    with httpx.Client(base_url=server.url, timeout=30) as c:
        with c.stream("POST", f"/v1/models/{TEXT}/stream", json=body) as reply:
            assert reply.status_code == 200
            pieces = 0
            for event, _ in _events(reply.iter_lines()):
                pieces += event == "piece"
                if pieces == 3:
                    break  # leaving the block closes the connection mid-stream
    with httpx.Client(base_url=server.url, timeout=30) as other:
        assert other.post(f"/v1/models/{GAN}/generate", json={"n": 1}).status_code == 200
        deadline = time.monotonic() + 10
        while counters.closed == closed_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counters.closed == closed_before + 1, "the abandoned stream kept generating"
        made = counters.pieces
        time.sleep(0.2)
        assert counters.pieces == made and made < 200
        assert other.get("/readyz").json()["models"][TEXT]["active_streams"] == 0


# -- command line ------------------------------------------------------------------------------


def test_cli_serve_refuses_a_public_bind_without_a_key(monkeypatch, capsys, tmp_path):
    from aigc_core.cli import main

    monkeypatch.delenv("AIGC_API_KEY", raising=False)
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "AIGC_API_KEY" in err and "Traceback" not in err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


# -- the real text plugin, when installed --------------------------------------------------------


@pytest.fixture(scope="module")
def real_text_server(tmp_path_factory):
    run_dir = tiny_text_run(tmp_path_factory.getbasetemp() / "server-causal-lm")
    if run_dir is None:
        pytest.skip("the aigc-text plugin (generator causal-lm) is not installed")
    with LiveServer(create_app([run_dir], ServerSettings())) as live:
        yield live


def test_real_text_plugin_generates_and_streams(real_text_server):
    with httpx.Client(base_url=real_text_server.url, timeout=60) as c:
        model = c.get("/v1/models/tiny-lm").json()
        assert model["stream"] is True
        assert model["options"]["properties"]["prompts"]["type"] == "array"
        body = {"seed": 3, "options": {"prompts": ["The "], "max_new_tokens": 6, "temperature": 0}}
        reply = c.post("/v1/models/tiny-lm/generate", json={"n": 1, **body}).json()
        text = reply["items"][0]["text"]
        assert text.startswith("The ") and reply["items"][0]["meta"]["prompt"] == "The "
        with c.stream("POST", "/v1/models/tiny-lm/stream", json=body) as events:
            pieces = [d["text"] for e, d in _events(events.iter_lines()) if e == "piece"]
        assert pieces[0] == "The " and "".join(pieces) == text  # greedy: stream and batch agree
        too_long = c.post("/v1/models/tiny-lm/generate", json={"options": {"prompts": ["x" * 5000]}})
        assert too_long.status_code == 422 and too_long.json()["field"] == "options.prompts"
