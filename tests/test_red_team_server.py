"""Hostile and careless input against the server, the model loader and ``aigc plugins install``
(issue 15, items 5-9 and the server parts of 13). Each test replays an attack that worked on
the code before the fix and asserts on what the attack was after: work stopped, a socket closed,
a file never written, a request refused with the field named. Every wait is bounded."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigc_core import Cancelled, CheckpointError, Pipeline, cancellation
from aigc_core.contract.errors import UsageError
from aigc_core.server import ServerSettings, create_app
from aigc_core.testing import CancelAfter
from aigc_testutil import wait_for
from server_kit import LiveServer, counters, fuzz_json, tiny_text_run

GAN = "digits-gan"
TEXT = "fake-text"


@pytest.fixture(scope="module")
def server(gan_run, text_run):
    app = create_app([gan_run, text_run], ServerSettings(batch_wait_ms=5, max_samples=8))
    with LiveServer(app) as live:
        yield live


def _local_client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://localhost")


# -- item 5: options are capped after coercion -----------------------------------------------------


@pytest.mark.parametrize("model, options, field", [
    (GAN, {"batch_size": "99999999"}, "options.batch_size"),
    (GAN, {"batch_size": "5000"}, "options.batch_size"),
    (GAN, {"batch_size": " 5000 "}, "options.batch_size"),
    (GAN, {"batch_size": 5000.0}, "options.batch_size"),
    (TEXT, {"max_new_tokens": "5000"}, "options.max_new_tokens"),
])
def test_numeric_strings_do_not_pass_the_option_caps(client, model, options, field):
    reply = client.post(f"/v1/models/{model}/generate", json={"n": 1, "options": options})
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == field and "this server allows at most" in reply.json()["error"]


def test_non_finite_option_values_are_refused(client):
    body = b'{"n": 1, "options": {"delay_s": NaN}}'  # Python's JSON reader accepts NaN and Infinity
    reply = client.post(f"/v1/models/{TEXT}/generate", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and reply.json()["field"] == "options.delay_s"


# -- item 5: timed-out work is cancelled; a stuck worker is reported -------------------------------


def test_a_timed_out_generation_is_cancelled_and_the_worker_serves_again(text_run):
    before = counters.cancelled
    app = create_app([text_run], ServerSettings(timeout_s=0.3))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        reply = c.post(f"/v1/models/{TEXT}/generate", json={"options": {"delay_s": 1.0}})
        assert reply.status_code == 504
        # the generator was told to stop and stopped at its next check, long before its 1 s
        assert wait_for(lambda: counters.cancelled == before + 1, 5.0), "the abandoned generation ran on"
        assert c.get("/readyz").status_code == 200
        assert c.post(f"/v1/models/{TEXT}/generate", json={"n": 1}).status_code == 200


def test_a_worker_stuck_past_the_time_limit_is_not_ready_and_refuses_at_once(text_run):
    app = create_app([text_run], ServerSettings(timeout_s=0.2))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        stuck = {"options": {"delay_s": 3.0, "ignore_cancel": True}}  # a generator that never checks
        assert c.post(f"/v1/models/{TEXT}/generate", json=stuck).status_code == 504
        # the worker started a few ms after the request's clock: stuck once it too is past 0.2 s
        assert wait_for(lambda: c.get("/readyz").status_code == 503, 2.0)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert ready.json()["models"][TEXT]["stuck"] is True
        busy = c.post(f"/v1/models/{TEXT}/generate", json={"n": 1})
        assert busy.status_code == 503 and "past the server's time limit" in busy.json()["error"]
        # once the call ends by itself, the model is ready again
        assert wait_for(lambda: c.get("/readyz").status_code == 200, 10.0)
        assert c.post(f"/v1/models/{TEXT}/generate", json={"n": 1}).status_code == 200


def test_the_gan_checks_for_cancellation_between_batches(gan_run):
    pipe = Pipeline.from_run_dir(gan_run)
    token = CancelAfter(2)
    with cancellation(token), pytest.raises(Cancelled):
        pipe.generate(6, seed=0, batch_size=2)  # three batches: stopped at the second
    assert token.seen == 2
    assert len(pipe.generate(6, seed=0, batch_size=2).items) == 6  # no token: unaffected


def test_the_text_plugin_checks_for_cancellation_between_decoding_steps(tmp_path_factory):
    run_dir = tiny_text_run(tmp_path_factory.getbasetemp() / "server-causal-lm")
    if run_dir is None:
        pytest.skip("the aigc-text plugin (generator causal-lm) is not installed")
    pipe = Pipeline.from_run_dir(run_dir)
    token = CancelAfter(5)
    with cancellation(token), pytest.raises(Cancelled):
        pipe.generate(1, seed=0, max_new_tokens=50, temperature=1.0)
    assert token.seen == 5  # stopped at the fifth token of fifty


# -- item 6: slow clients ----------------------------------------------------------------------------


def _read_all(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """What the server sends until it closes the connection (bounded)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except socket.timeout:
        pass
    return data


def _closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_half_open_connections_are_evicted_and_timed_out_while_healthz_answers(text_run):
    app = create_app([text_run], ServerSettings(header_timeout_s=4.0, max_connections=64))
    with LiveServer(app) as live:
        host, port = live.url.removeprefix("http://").split(":")
        sockets = []
        try:
            started = time.monotonic()
            for _ in range(300):  # heads never finished
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sockets.append(s)
            # past the cap, the oldest half-open connections made room: at most 64 stay open
            assert wait_for(lambda: sum(_closed_by_server(s) for s in sockets) >= 300 - 64, 10.0, 0.1)
            at_cap = sum(not _closed_by_server(s) for s in sockets)
            with httpx.Client(base_url=live.url, timeout=10) as c:
                assert c.get("/healthz").json() == {"status": "ok"}  # a real client is still served
            if time.monotonic() - started < 3.5:  # (on a machine so slow that the deadline came first, moot)
                assert at_cap > 0  # ...while the server was full of half-open connections
            # and the rest are cut at the head deadline
            assert wait_for(lambda: all(_closed_by_server(s) for s in sockets), 15.0, 0.1)
        finally:
            for s in sockets:
                s.close()


def test_a_head_trickled_byte_by_byte_is_cut_at_the_deadline(text_run):
    app = create_app([text_run], ServerSettings(header_timeout_s=1.0))
    with LiveServer(app) as live:
        host, port = live.url.removeprefix("http://").split(":")
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 400
        with socket.create_connection((host, int(port)), timeout=5) as s:
            started = time.monotonic()
            closed = False
            for byte in head:  # one byte every 20 ms: 8 s if nobody stops it
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                if _closed_by_server(s):
                    closed = True
                    break
                s.setblocking(True)
                time.sleep(0.02)
            assert closed and time.monotonic() - started < 6.0


def test_a_body_that_does_not_arrive_in_time_gets_408(text_run):
    app = create_app([text_run], ServerSettings(body_timeout_s=0.5))
    with LiveServer(app) as live:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(f"POST /v1/models/{TEXT}/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"n\": ".encode())
            reply = _read_all(s)
        assert reply.startswith(b"HTTP/1.1 408") and b"not received within 0.5 s" in reply


# -- item 7: a tampered text run ------------------------------------------------------------------------


def _copy_text_run(tmp_path_factory, dest: Path) -> Path:
    run_dir = tiny_text_run(tmp_path_factory.getbasetemp() / "server-causal-lm")
    if run_dir is None:
        pytest.skip("the aigc-text plugin (generator causal-lm) is not installed")
    shutil.copytree(run_dir, dest)
    return dest


EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


def test_a_model_dir_with_files_the_manifest_does_not_list_is_refused(tmp_path_factory, tmp_path):
    run = _copy_text_run(tmp_path_factory, tmp_path / "run")
    marker = tmp_path / "ran.txt"
    (run / "model" / "evil_model.py").write_text(EVIL.format(marker=str(marker)))
    with pytest.raises(CheckpointError, match="evil_model.py: file not listed in manifest.json"):
        Pipeline.from_run_dir(run)
    assert not marker.exists()


def test_remote_code_in_a_run_never_runs_even_when_the_manifest_lists_it(tmp_path_factory, tmp_path, monkeypatch):
    from aigc_core.contract.atomic import sha256_file

    run = _copy_text_run(tmp_path_factory, tmp_path / "run")
    marker = tmp_path / "ran.txt"
    model = run / "model"
    (model / "evil_model.py").write_text(EVIL.format(marker=str(marker)) +
                                         "from transformers import GPT2LMHeadModel as EvilModel\n")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="evil-gpt", auto_map={"AutoModelForCausalLM": "evil_model.EvilModel",
                                                    "AutoConfig": "evil_model.EvilModel"})
    (model / "config.json").write_text(json.dumps(config))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoint"]["files"] = {p.name: sha256_file(p) for p in model.iterdir() if p.is_file()}
    (run / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr("builtins.input", lambda *a, **k: "y")  # the user who answers yes to the prompt
    try:
        Pipeline.from_run_dir(run)
        outcome = None
    except Exception as exc:  # noqa: BLE001 - what matters first is whether the code ran
        outcome = exc
    assert not marker.exists(), "the run's own Python was executed"
    assert isinstance(outcome, CheckpointError), outcome


# -- item 8: aigc plugins install ------------------------------------------------------------------------


def _aigc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    from test_plugins_install import wheel

    folder = tmp_path_factory.mktemp("wheels-red")
    wheel(folder, "torch", "2.0.0")
    wheel(folder, "aigc-harmless", "0.1.0", ("aigc-core>=0.1",))
    return folder


def test_a_dry_run_does_not_run_a_packages_setup_py(tmp_path, wheels):
    pytest.importorskip("setuptools", reason="setuptools builds the package on the code before the fix")
    marker = tmp_path / "setup-ran.txt"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "setup.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                  "from setuptools import setup\nsetup(name='aigc-evil', version='0.1')\n")
    proc = _aigc("plugins", "install", str(pkg), "--dry-run", "--no-build-isolation", "--no-index",
                 "-f", str(wheels))
    assert not marker.exists(), "the dry run executed setup.py"
    assert proc.returncode == 2 and "setup.py" in proc.stderr and "a dry run runs no package code" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_dry_run_reads_a_static_pyproject_without_building(tmp_path, wheels):
    from importlib.metadata import version

    marker = tmp_path / "backend-ran.txt"
    pkg = tmp_path / "static"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "evil_backend"\nbackend-path = ["."]\n'
        '[project]\nname = "aigc-static"\nversion = "0.3.0"\ndependencies = ["torch==2.0.0"]\n')
    (pkg / "evil_backend.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    proc = _aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(wheels), "-e", str(pkg))
    assert not marker.exists(), "the dry run imported the package's build backend"
    assert "aigc-static 0.3.0 (new)" in proc.stderr
    assert f"torch {version('torch')} -> 2.0.0" in proc.stderr and proc.returncode == 1  # still refused


@pytest.mark.parametrize("spec", ["./pkg.tar.gz", "git+https://example.invalid/pkg.git"])
def test_a_dry_run_of_a_source_archive_or_url_is_refused(tmp_path, spec):
    (tmp_path / "pkg.tar.gz").write_bytes(b"not really")
    proc = _aigc("plugins", "install", "--dry-run", "--no-index", spec, cwd=tmp_path)
    assert proc.returncode == 2 and "a dry run runs no package code" in proc.stderr


def test_flags_after_double_dash_cannot_reach_pip(tmp_path, wheels):
    target = tmp_path / "target"
    proc = _aigc("plugins", "install", "--dry-run", "--no-index", "-f", str(wheels), "--",
                 f"--target={target}", "aigc-harmless")
    assert proc.returncode == 2 and "pip options cannot be passed through" in proc.stderr
    assert not target.exists()


# -- item 9: keys, Host, docs --------------------------------------------------------------------------


UNICODE_KEY = "clé-secrète-ключ-🔑-2024"


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "basic"])
def test_a_non_ascii_api_key_matches_by_its_utf8_bytes(text_run, header):
    app = create_app([text_run], ServerSettings(api_key=UNICODE_KEY))

    def headers(key: str) -> dict:
        raw = key.encode("utf-8")  # what curl, httpx and browsers put on the wire
        return {"authorization": {"Authorization": b"Bearer " + raw}, "x-api-key": {"X-API-Key": raw},
                "basic": {"Authorization": b"Basic " + base64.b64encode(b"user:" + raw)}}[header]

    with _local_client(app) as c:
        assert c.get("/v1/models", headers=headers(UNICODE_KEY)).status_code == 200
        assert c.get("/v1/models", headers=headers(UNICODE_KEY.replace("🔑", "🗝"))).status_code == 401
        assert c.get("/v1/models", headers=headers(UNICODE_KEY.encode().decode("latin-1"))).status_code == 401


@pytest.mark.parametrize("host, status", [
    ("evil.example", 421), ("evil.example:8000", 421), ("127.0.0.1.nip.io", 421), ("localhost.evil.example", 421),
    ("localhost", 200), ("localhost:8000", 200), ("127.0.0.1:8000", 200), ("127.5.5.5", 200), ("[::1]:8000", 200),
    ("app.localhost", 200),
])
def test_a_loopback_server_refuses_foreign_host_headers(text_run, host, status):
    app = create_app([text_run], ServerSettings())
    with _local_client(app) as c:
        reply = c.get("/v1/models", headers={"Host": host})
        assert reply.status_code == status, reply.text
        if status == 421:
            assert "not this server" in reply.json()["error"]


def test_allowed_hosts_and_public_binds_skip_the_host_check(text_run, monkeypatch):
    app = create_app([text_run], ServerSettings(allowed_hosts=["aigc.internal"]))
    with _local_client(app) as c:
        assert c.get("/healthz", headers={"Host": "aigc.internal:80"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "other.internal"}).status_code == 421
    key = "k9-Xq2-pL7-zR4-wT1-mN8"
    app = create_app([text_run], ServerSettings(host="0.0.0.0", api_key=key))
    with _local_client(app) as c:
        reply = c.get("/healthz", headers={"Host": "aigc.example.com", "Authorization": f"Bearer {key}"})
        assert reply.status_code == 200


def test_a_live_loopback_server_refuses_a_rebinding_request(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: attacker.example:8000\r\nConnection: close\r\n\r\n")
        reply = _read_all(s)
    assert reply.startswith(b"HTTP/1.1 421") and GAN.encode() not in reply


@pytest.mark.parametrize("key, env, needle", [
    ("x", None, "at least 16 are needed"),
    ("aaaaaaaaaaaaaaaaaaaaaaaa", None, "different characters"),
    ("abababababababababababab", None, "different characters"),
    (None, "HOME", "path of an existing file or directory"),
])
def test_a_public_bind_needs_a_strong_key(monkeypatch, tmp_path, key, env, needle):
    if env:
        monkeypatch.setenv(env, str(tmp_path / "some-user-home-dir"))
        (tmp_path / "some-user-home-dir").mkdir()
    with pytest.raises(UsageError, match=needle):
        ServerSettings(host="0.0.0.0", api_key=key, api_key_env=env or "AIGC_API_KEY")
    ServerSettings(host="127.0.0.1", api_key=key, api_key_env=env or "AIGC_API_KEY")  # loopback: any key
    ServerSettings(host="0.0.0.0", api_key="Zx8-qW3-rT6-yU1-pL9")


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/models/{name}/generate" in page.text and "GenerateRequest" in page.text
    assert "https://" not in page.text and "http://" not in page.text and "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


# -- item 13, server parts ------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"n": True}, "n"), ({"n": "2"}, "n"), ({"seed": True}, "seed"), ({"n": 1, "postprocess": 1}, "postprocess"),
])
def test_request_fields_are_strictly_typed(client, body, field):
    reply = client.post(f"/v1/models/{TEXT}/generate", json=body)
    assert reply.status_code == 422 and reply.json()["field"] == field, reply.text


def test_one_sample_as_files_is_that_file_even_with_a_grid_post_processor(trained_run):
    app = create_app([trained_run], ServerSettings())
    model = Pipeline.from_run_dir(trained_run)
    assert [p.name for p in model.postprocessors] == ["image-grid"]
    with _local_client(app) as c:
        one = c.post("/v1/models/tiny-gan/generate", json={"n": 1, "seed": 1, "output": "files"})
        assert one.headers["content-type"] == "image/png" and "sample_00000.png" in one.headers["content-disposition"]
        listed = c.post("/v1/models/tiny-gan/generate", json={"n": 1, "seed": 1}).json()["items"]
        assert base64.b64decode(listed[0]["data_base64"]) == one.content  # the sample, not the grid
        two = c.post("/v1/models/tiny-gan/generate", json={"n": 2, "seed": 1, "output": "files"})
        assert two.headers["content-type"] == "application/zip"  # several: the zip, grid included
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(two.content)) as zf:
            assert sorted(n for n in zf.namelist() if n.endswith(".png")) == [
                "grid_00002.png", "sample_00000.png", "sample_00001.png"]


def test_serve_on_a_busy_port_is_one_line_and_exit_1(text_run, capsys):
    from aigc_core.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", str(text_run), "--port", str(port), "--log-level", "critical"])
    err = capsys.readouterr().err
    assert code == 1, err
    *loading, error = err.strip().splitlines()  # serve's start-up lines, then the error in one line
    assert all(line.startswith("aigc serve: ") for line in loading), loading
    assert f"cannot listen on 127.0.0.1:{port}" in error and "in use" in error and "Traceback" not in err


# -- the generate endpoint under fuzzed JSON ---------------------------------------------------------------


FUZZ_EXAMPLES = int(os.environ.get("AIGC_SERVER_FUZZ_EXAMPLES", "60"))

json_scalars, json_values = fuzz_json("1_000")
GAN_OPTIONS = ["label", "use_ema", "batch_size", "start"]
TEXT_OPTIONS = ["prompt", "max_new_tokens"]  # not delay_s: a slow generation is not a malformed body


@st.composite
def generate_bodies(draw):
    model = draw(st.sampled_from([GAN, TEXT]))
    names = GAN_OPTIONS if model == GAN else TEXT_OPTIONS
    body = {}
    for key in draw(st.lists(st.sampled_from(["n", "seed", "options", "postprocess", "output", "extra"]),
                             max_size=5, unique=True)):
        if key == "options":
            body[key] = draw(st.one_of(
                st.dictionaries(st.sampled_from(names) | st.text(max_size=5), json_values, max_size=3),
                json_values))
        elif key == "n":
            body[key] = draw(st.one_of(st.integers(-2, 10), json_scalars))
        elif key == "output":
            body[key] = draw(st.sampled_from(["json", "files", "zip", 1]))
        else:
            body[key] = draw(json_values)
    as_json = json.dumps(draw(st.one_of(st.just(body), json_values)), allow_nan=True)
    raw = draw(st.one_of(st.just(as_json), st.just(as_json[: len(as_json) // 2]), st.text(max_size=20)))
    return model, raw.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def fuzz_client(gan_run, text_run):
    app = create_app([gan_run, text_run], ServerSettings(max_samples=4, batch_wait_ms=0))
    with _local_client(app) as c:
        yield c


FUZZ_STATS = {"ok": 0, "refused": 0}


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          derandomize=os.environ.get("AIGC_FUZZ_RANDOM") != "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generate_bodies())
def test_any_generate_body_gets_2xx_or_a_4xx_json_error(fuzz_client, case):
    model, raw = case
    reply = fuzz_client.post(f"/v1/models/{model}/generate", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code < 500, (raw, reply.status_code, reply.text)
    if reply.status_code >= 400:
        FUZZ_STATS["refused"] += 1
        error = reply.json()["error"]
        assert isinstance(error, str) and error and "\n" not in error
    else:
        FUZZ_STATS["ok"] += 1


def test_the_server_fuzzer_reaches_both_outcomes():
    if FUZZ_STATS["ok"] + FUZZ_STATS["refused"] < FUZZ_EXAMPLES:
        pytest.skip("runs after test_any_generate_body_gets_2xx_or_a_4xx_json_error in the same session")
    assert FUZZ_STATS["ok"] >= 3 and FUZZ_STATS["refused"] >= 20, FUZZ_STATS


@pytest.mark.parametrize("setting, value", [
    ("header_timeout_s", -1.0), ("header_timeout_s", float("nan")), ("body_timeout_s", 0.0),
    ("keep_alive_s", float("inf")), ("max_connections", 0),
])
def test_bad_connection_limits_are_refused_naming_the_setting(setting, value):
    """The slow-client limits are only a defence when they hold a usable value."""
    with pytest.raises(UsageError, match=rf"^server setting {setting}: must be"):
        ServerSettings(**{setting: value})


def test_bad_connection_flag_is_one_line_exit_2(tmp_path):
    """`aigc serve --header-timeout -1` stops before loading anything, with one line and exit 2."""
    proc = subprocess.run([sys.executable, "-m", "aigc_core", "serve", str(tmp_path), "--header-timeout", "-1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "header_timeout_s: must be a positive number" in proc.stderr
