"""`aigc check` is the promise that a run can start here (issue 29, item 2): nodes without a
launcher, more devices than the machine has and a precision the accelerator cannot do are refused
in one line naming the key, by check and by run before the run directory exists; the precision a
run really trained in is in its manifest; and a run stuck in start-up, waiting for processes that
never come, still stops on SIGTERM and Ctrl-C within seconds and leaves no directory behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aigc_core.train import layout
from aigc_testutil import Forked, cli, tiny_gan_config, write_yaml

#: Every variable by which aigc (and Lightning) recognise a multi-node launcher.
LAUNCHER_VARIABLES = ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME", "LSB_JOBID", "LSB_DJOB_RANKFILE",
                      "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                      "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "GROUP_RANK", "RANK", "LOCAL_RANK", "WORLD_SIZE")


@pytest.fixture()
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _config(tmp_path: Path, **train) -> tuple[Path, Path]:
    out = tmp_path / "run"
    config = tiny_gan_config(out, name="layout")
    config["train"].update(train)
    return write_yaml(tmp_path / "layout.yaml", config), out


@pytest.mark.parametrize("train, key, words", [
    ({"num_nodes": 2}, "train.num_nodes", "need a launcher"),
    ({"devices": 999, "accelerator": "cpu"}, "train.devices", "999 training processes"),
    ({"devices": layout.cpu_cores() + 1, "accelerator": "cpu"}, "train.devices", f"at most {layout.cpu_cores()}"),
    ({"precision": "16", "accelerator": "cpu"}, "train.precision", "Lightning would train in bf16-mixed instead"),
    ({"precision": "16-mixed", "accelerator": "cpu"}, "train.precision", "bf16-mixed"),
])
def test_check_and_run_refuse_a_layout_this_machine_cannot_run(no_launcher, tmp_path, capsys, train, key, words):
    path, out = _config(tmp_path, **train)
    code, stdout, err = cli(capsys, "check", str(path))
    assert code == 2 and stdout == "", err
    assert err.startswith(f"aigc: error: {key}: ") and words in err and err.count("\n") == 1, err
    code, _, run_err = cli(capsys, "run", str(path))
    assert code == 2 and run_err == err
    assert not out.exists(), "aigc run touched the run directory before refusing"


def test_nodes_pass_check_under_a_launchers_environment(no_launcher, tmp_path, capsys):
    path, _ = _config(tmp_path, num_nodes=2, accelerator="cpu", devices=1)
    no_launcher.setenv("MASTER_ADDR", "127.0.0.1")
    no_launcher.setenv("NODE_RANK", "1")
    code, stdout, err = cli(capsys, "check", str(path))
    assert code == 0 and stdout.startswith("ok: layout"), err


def test_a_check_under_a_launchers_environment_leaves_this_process_rank_zero(no_launcher, tmp_path, capsys):
    """Building the check's Trainer as node 1 set Lightning's process-wide rank to 1, so every run
    later in the same process (the Python API, a test session) logged nothing: no metrics.csv."""
    from lightning_utilities.core.rank_zero import rank_zero_only

    path, _ = _config(tmp_path, num_nodes=2, accelerator="cpu", devices=1)
    no_launcher.setenv("MASTER_ADDR", "127.0.0.1")
    no_launcher.setenv("NODE_RANK", "1")
    assert cli(capsys, "check", str(path))[0] == 0
    assert rank_zero_only.rank == 0


@pytest.mark.parametrize("env, found", [
    ({}, None),
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "0"}, "torchrun"),
    ({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "train"}, "SLURM"),
    ({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "interactive"}, None),  # an salloc shell starts nothing
    ({"MASTER_ADDR": "10.0.0.1"}, None),  # an address alone says nothing of this node's place
    ({"MASTER_ADDR": "10.0.0.1", "NODE_RANK": "1"}, "MASTER_ADDR/NODE_RANK"),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, "MPI"),
])
def test_launchers_are_recognised_by_their_variables(env, found):
    assert layout.launcher(env) == found


def test_the_manifest_records_the_precision_the_run_really_trained_in(trained_run):
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["training"]["precision"] == "32-true"  # the config's 32-true, as Lightning names it


# -- a run blocked in start-up -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc as on Linux")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_waiting_for_a_node_that_never_comes_stops_on_a_signal_and_leaves_no_directory(tmp_path, signum):
    """Rank 0 of a two-node run whose second node nobody starts: the launcher's variables are set
    (by hand), so check lets it through, and it waits in torch.distributed's rendezvous, in C++.
    A forked process: what is tested is how it ends, not its imports."""
    port = _free_port()
    path, out = _config(tmp_path, num_nodes=2, devices=1, accelerator="cpu", max_epochs=1)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK="0")
    proc = Forked("run", str(path), env=env)
    try:
        deadline = time.monotonic() + 180  # start-up on a loaded machine; the rendezvous then listens
        while not _listening(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None and _listening(port), "the run never reached its rendezvous"
        assert (out / "manifest.json").is_file()  # it did make its run directory
        time.sleep(0.5)
        proc.send_signal(signum)
        sent = time.monotonic()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{signal.Signals(signum).name} ignored: the run was still waiting 20 s later")
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err
    assert took < 15, f"stopped only after {took:.1f} s"
    assert f"aigc: {signal.Signals(signum).name} during start-up" in err
    assert not out.exists(), sorted(os.listdir(out))


def test_sharded_generation_refuses_nodes_without_a_launcher(no_launcher, trained_run, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "4", "--num-nodes", "2", "--out", str(out))
    assert code == 2 and err.startswith("aigc: error: --num-nodes: 2 nodes need a launcher") and err.count("\n") == 1
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "4", "--devices", "999", "--out", str(out))
    assert code == 2 and err.startswith("aigc: error: --devices: 999 devices on the CPU"), err
    assert not out.exists()


def test_gpu_counts_and_ids_are_checked_against_the_gpus_present(no_launcher, monkeypatch):
    """No GPU is needed to test the rule: torch is told there is one."""
    from types import SimpleNamespace

    import torch

    from aigc_core import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def layout_of(devices, accelerator="gpu"):
        layout.check_layout(SimpleNamespace(num_nodes=1, devices=devices, accelerator=accelerator))

    layout_of(1)
    layout_of("auto", "auto")
    with pytest.raises(ConfigError, match=r"^train.devices: 2 GPUs asked for, but this machine has 1$"):
        layout_of(2)
    with pytest.raises(ConfigError, match=r"^train.devices: GPU ids \[0, 1\] asked for"):
        layout_of([0, 1], "cuda")
