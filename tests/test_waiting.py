"""OpenMP threads sleep while they wait in ``aigc generate`` and ``aigc serve`` (issue 30).

On a shared machine, spinning threads made the small tensor work of generation 10 to 50 times
slower than the same work with sleeping threads (``aigc_core.helpers.waiting``). libgomp reads the
setting once, at torch's import, so the test records the environment at that moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from aigc_core.helpers import waiting

PROBE = textwrap.dedent("""
    import json, os, sys
    seen = {}

    class Spy:  # notes the setting libgomp will read, when torch is first imported
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and "torch" not in seen:
                seen["torch"] = os.environ.get("OMP_WAIT_POLICY")
            return None

    sys.meta_path.insert(0, Spy())
    from aigc_core.cli import main
    code = main(sys.argv[1:])
    print(json.dumps({"code": code, "at_torch_import": seen.get("torch", "not imported"),
                      "after": os.environ.get("OMP_WAIT_POLICY")}))
""")

def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*waiting.USER_KEYS, waiting.ENV)}
    return {**env, **extra}


def probe(argv: list[str], **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=clean_env(**env), capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_generate_asks_for_passive_waits_before_torch_is_imported(trained_run, tmp_path):
    found = probe(["generate", str(trained_run), "-n", "2", "--out", str(tmp_path / "out")])
    assert found["code"] == 0
    assert found["at_torch_import"] == "PASSIVE", found


def test_a_users_setting_and_the_off_switch_win(trained_run, tmp_path):
    argv = ["generate", str(trained_run), "-n", "1", "--out"]
    assert probe(argv + [str(tmp_path / "a")], OMP_WAIT_POLICY="ACTIVE")["at_torch_import"] == "ACTIVE"
    assert probe(argv + [str(tmp_path / "b")], GOMP_SPINCOUNT="1000")["at_torch_import"] is None
    assert probe(argv + [str(tmp_path / "c")], **{waiting.ENV: "0"})["at_torch_import"] is None


def test_serve_asks_for_passive_waits_first(tmp_path):
    # refused before any model loads (a public bind needs a key): the setting is made before that
    found = probe(["serve", str(tmp_path / "no-run"), "--host", "0.0.0.0", "--api-key-env", "AIGC_TEST_NO_SUCH_KEY"])
    assert found["code"] == 2
    assert found["at_torch_import"] == "not imported" and found["after"] == "PASSIVE", found


def test_too_late_once_torch_is_imported(monkeypatch):
    for key in (*waiting.USER_KEYS, waiting.ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    assert waiting.passive_waits() is False
    assert "OMP_WAIT_POLICY" not in os.environ
