"""``aigc serve`` says what it does while it starts: a line per model as it loads, a heartbeat
while one takes long, and the URL once the server listens, on stderr, never ten seconds silent."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import httpx

from aigc_core.cli.serve_cmds import Heartbeat
from aigc_testutil import Forked, wait_for

SILENCE_S = 10.0


def test_serve_prints_each_model_as_it_loads_then_its_url(gan_run):
    """A forked ``aigc serve`` (its imports are done: test_no_silence.py times a fresh one's)."""
    started = time.monotonic()
    proc = Forked("serve", f"digits={gan_run}", "--port", "0", "--log-level", "warning")
    try:
        assert wait_for(lambda: any("serving" in text for _, text in proc.lines) or proc.poll() is not None, 180), \
            f"no 'serving' line: {proc.lines}"
        lines = list(proc.lines)
        lines = lines[:next(i for i, (_, text) in enumerate(lines) if "serving" in text) + 1]
        said = [text for _, text in lines]
        assert said[0].startswith("aigc serve: loading 1 model"), said
        assert f"aigc serve: loading model 1 of 1: digits={gan_run}" not in said  # the path, not the spec
        assert any(text == f"aigc serve: loading model 1 of 1: {gan_run}" for text in said), said
        assert any(re.fullmatch(r"aigc serve: loaded digits \(image, dcgan\) in \d+\.\d s", text) for text in said), said
        url = re.search(r"serving digits at (http://127\.0\.0\.1:\d+/) ", said[-1]).group(1)
        assert httpx.get(url, timeout=10).status_code == 200  # the URL it printed is where it listens
        assert httpx.get(url + "v1/models", timeout=10).json()["models"][0]["name"] == "digits"
        times = [started] + [t for t, _ in lines]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) < SILENCE_S, list(zip(gaps, said))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


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
