"""The cyclic collector is off while ``aigc generate`` loads, and what was loaded is frozen out of
its reach afterwards (issue 30: collections were 0.8-1.1 CPU-s of a tiny run's 4.6-5.9)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

import pytest

from aigc_core.helpers.collector import held_off_while_loading

PROBE = textwrap.dedent("""
    import gc, json, sys
    seen = {}

    class Spy:  # whether the collector runs while torch, the heaviest import, is loaded
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and "torch" not in seen:
                seen["torch"] = gc.isenabled()
            return None

    sys.meta_path.insert(0, Spy())
    from aigc_core.cli import main
    code = main(sys.argv[1:])
    print(json.dumps({"code": code, "enabled_at_torch_import": seen.get("torch", "not imported"),
                      "enabled_after": gc.isenabled(), "frozen": gc.get_freeze_count()}))
""")


@pytest.fixture
def thawed():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's objects back in reach
    gc.enable()


def test_off_while_loading_then_frozen_and_on(thawed):
    kept = [object() for _ in range(100)]
    with held_off_while_loading():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)


def test_a_caller_that_turned_it_off_is_left_alone(thawed):
    gc.disable()
    with held_off_while_loading():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_back_on_after_a_failed_load(thawed):
    with pytest.raises(RuntimeError):
        with held_off_while_loading():
            raise RuntimeError("no such run")
    assert gc.isenabled()


def test_generate_loads_without_the_collector(trained_run, tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, "generate", str(trained_run), "-n", "2", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["code"] == 0
    assert found["enabled_at_torch_import"] is False, found
    assert found["enabled_after"] is True and found["frozen"] > 100_000, found
