"""``aigc serve`` says what it does while it starts: a line per model as it loads, a heartbeat
while one takes long, and the URL once the server listens, on stderr, never ten seconds silent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx

from aigc_core.cli.serve_cmds import Heartbeat
from server_kit import tiny_gan_run

SILENCE_S = 10.0


def test_serve_prints_each_model_as_it_loads_then_its_url(tmp_path_factory):
    run = tiny_gan_run(tmp_path_factory.getbasetemp() / "server-gan", name="digits-gan")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "aigc_core", "serve", f"digits={run}", "--port", "0",
                             "--log-level", "warning"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[tuple[float, str]] = []
    serving = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
            if "serving" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(180), f"no 'serving' line: {lines}"
        said = [text for _, text in lines]
        assert said[0].startswith("aigc serve: loading 1 model"), said
        assert f"aigc serve: loading model 1 of 1: digits={run}" not in said  # the path, not the spec
        assert any(text == f"aigc serve: loading model 1 of 1: {run}" for text in said), said
        assert any(re.fullmatch(r"aigc serve: loaded digits \(image, dcgan\) in \d+\.\d s", text) for text in said), said
        url = re.search(r"serving digits at (http://127\.0\.0\.1:\d+/) ", said[-1]).group(1)
        assert httpx.get(url, timeout=10).status_code == 200  # the URL it printed is where it listens
        assert httpx.get(url + "v1/models", timeout=10).json()["models"][0]["name"] == "digits"
        times = [0.0] + [t for t, _ in lines]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) < SILENCE_S, list(zip(gaps, said))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_heartbeat_speaks_while_a_step_runs_long_and_stops_when_it_ends(capsys):
    with Heartbeat(every=0.2) as beat:
        beat.doing("loading runs/big")
        time.sleep(0.7)
        beat.doing(None)
        beats = capsys.readouterr().err.splitlines()
        time.sleep(0.5)
        quiet = capsys.readouterr().err
    assert len(beats) >= 2, beats
    assert all(re.fullmatch(r"aigc serve: still loading runs/big \(\d+ s\)", line) for line in beats), beats
    assert quiet == ""  # nothing to report between steps
