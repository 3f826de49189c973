"""Stopping work nobody waits for: a client that closes its connection (the page's Stop aborts
its fetch) ends its generation at the generator's next step, and the next request starts at once.

The generator is the test kit's fake with ``steps``: it sleeps ``step_s`` per step and checks
for cancellation between steps, as a diffusion sampler or a decoding loop does.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from aigc_core.server import ServerSettings, create_app
from server_kit import LiveServer, counters, fake_text_run

MODEL = "fake-text"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return fake_text_run(tmp_path_factory.getbasetemp() / "cancel-fake-text", name=MODEL)


def _wait_for(predicate, timeout: float, every: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def _open_request(url: str, path: str, body: dict) -> socket.socket:
    """A POST sent on a raw socket, left waiting for its reply: closing the socket is the client leaving."""
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port))
    data = json.dumps(body).encode()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {where.hostname}:{where.port}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def test_a_client_that_leaves_stops_its_generation_within_a_step_and_frees_the_worker(text_run):
    asked, step_s = 40, 0.25  # ten seconds of work if it ran to the end
    with LiveServer(create_app([text_run], ServerSettings())) as live, \
            httpx.Client(base_url=live.url, timeout=30) as c:
        calls = len(counters.steps)
        sock = _open_request(live.url, f"/v1/models/{MODEL}/generate",
                             {"n": 1, "seed": 1, "options": {"steps": asked, "step_s": step_s}})
        progress = f"/v1/models/{MODEL}/progress"
        assert _wait_for(lambda: (c.get(progress).json()["done"] or 0) >= 2, 10.0), "the slow call never started"
        stopped = counters.steps[calls]
        at_close = stopped[1]
        sock.close()  # what the browser does when the page's Stop aborts the fetch
        started = time.perf_counter()
        reply = c.post(f"/v1/models/{MODEL}/generate", json={"n": 1, "seed": 2, "options": {"steps": 1, "step_s": 0.01}})
        latency = time.perf_counter() - started
        assert reply.status_code == 200, reply.text
        remaining = (asked - at_close) * step_s
        # the next request waited for at most the step in flight, not for the rest of the call
        assert latency < 0.15 * remaining, (latency, remaining)
        assert stopped[1] <= at_close + 2, stopped  # the step in flight when the socket closed, and no more
        assert stopped[1] < asked
        assert counters.steps[-1] == [1, 1]  # the next request's own call ran to its end


def test_a_request_shared_with_a_waiting_client_is_not_stopped_when_one_leaves(text_run):
    """Two identical seeded requests share one call: one client leaving must not take the other's
    result away; the call runs on for the one still waiting."""
    asked, step_s = 6, 0.1
    settings = ServerSettings(batch_wait_ms=300)  # long enough for both to join one call
    with LiveServer(create_app([text_run], settings)) as live, httpx.Client(base_url=live.url, timeout=30):
        calls = len(counters.steps)
        body = {"n": 1, "seed": 7, "options": {"steps": asked, "step_s": step_s}}
        leaving = _open_request(live.url, f"/v1/models/{MODEL}/generate", body)
        staying = _open_request(live.url, f"/v1/models/{MODEL}/generate", body)
        assert _wait_for(lambda: len(counters.steps) > calls and counters.steps[calls][1] >= 1, 10.0)
        leaving.close()
        staying.settimeout(20)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += staying.recv(65536)
        staying.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert counters.steps[calls] == [asked, asked] and len(counters.steps) == calls + 1
