"""Whether this machine can run a ``train`` section's layout: nodes, devices, precision.

``aigc check`` promises that a run can start here, and Lightning checks less than that: it builds
a Trainer for ``num_nodes: 2`` with nobody to start the second node (the run then waits for it
for half an hour), for ``devices: 999`` on a two-core CPU (it would start 999 training processes),
and for ``precision: 16`` on a CPU (it trains in bf16-mixed instead, behind a warning). The rules:

- **Nodes.** More than one node needs a launcher that starts aigc on every node and tells each
  process its place: torchrun, SLURM's ``srun``, LSF's ``jsrun``, an MPI launcher, or the
  variables set by hand (``MASTER_ADDR`` and ``NODE_RANK``, as docs/distributed.md shows).
  Without one, no other node will ever join.
- **Devices.** Lightning starts one training process per CPU "device", each with its own
  threads; past the cores this process may use (``os.sched_getaffinity``: a ``taskset`` or
  container cpuset counts, not the machine's total) they only contend, and a large count
  exhausts memory and the process table. So on a CPU the bound is those cores. GPUs are bounded
  by the GPUs present, ids by their range. Under a launcher the processes already exist and the
  launcher decided their number; Lightning checks that against its world size.
- **Precision.** A precision the accelerator cannot do is refused, naming what Lightning would
  substitute, so a run never trains in another precision than its config says. The precision a
  run really used is in its manifest (``training.precision``).

Everything here reads the environment and ``torch`` only; the Trainer Lightning builds from the
same section is checked by ``Pipeline.check``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..contract.errors import ConfigError

#: Lightning's short precision names and what it takes them for.
CANONICAL_PRECISION = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}


def launcher(env: Mapping[str, str] | None = None) -> str | None:
    """The multi-node launcher whose variables this process carries, or None."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env:
        return "torchrun"
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return "SLURM"  # Lightning's own test: srun sets SLURM_NTASKS, an interactive shell is named so
    if {"LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE"} <= set(env):
        return "LSF"
    if "OMPI_COMM_WORLD_SIZE" in env or "PMI_SIZE" in env:
        return "MPI"
    if "MASTER_ADDR" in env and ("NODE_RANK" in env or "GROUP_RANK" in env):
        return "MASTER_ADDR/NODE_RANK"
    return None


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolved_accelerator(name: str) -> str:
    """``cpu``, ``cuda``, ``mps`` or the name as given, the way Lightning resolves ``auto`` and ``gpu``."""
    name = str(name).lower()
    if name not in ("auto", "gpu", "cuda", "mps"):
        return name
    import torch

    if name in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if name in ("auto", "gpu", "mps") and mps is not None and mps.is_available():
        return "mps"
    return "cpu" if name == "auto" else name


def check_layout(train: Any, env: Mapping[str, str] | None = None, keys: Mapping[str, str] | None = None) -> None:
    """Refuse (``ConfigError`` naming the key) a node or device count this machine cannot run.

    ``train`` has ``num_nodes``, ``devices`` and ``accelerator``; ``keys`` names them in errors
    (default ``train.*``; ``aigc generate`` passes its flags)."""
    keys = {"num_nodes": "train.num_nodes", "devices": "train.devices", **(keys or {})}
    found = launcher(env)
    if train.num_nodes > 1 and found is None:
        raise ConfigError(keys["num_nodes"], (
            f"{train.num_nodes} nodes need a launcher that starts aigc on each of them (torchrun, SLURM's srun, "
            "or MASTER_ADDR and NODE_RANK set by hand; see docs/distributed.md); none is set here, so the run "
            "would wait for nodes that nobody starts"))
    accelerator = resolved_accelerator(train.accelerator)
    devices = train.devices
    if accelerator == "cpu" and found is None and isinstance(devices, int) and not isinstance(devices, bool):
        cores = cpu_cores()
        if devices > cores:
            raise ConfigError(keys["devices"], (
                f"{devices} devices on the CPU would start {devices} training processes, but this process may use "
                f"{cores} CPU core{'s' if cores != 1 else ''}; at most {cores}"))
    elif accelerator == "cuda":
        import torch

        present = torch.cuda.device_count()
        wanted = devices if isinstance(devices, list) else [devices]
        if isinstance(devices, int) and devices > present:
            raise ConfigError(keys["devices"], f"{devices} GPUs asked for, but this machine has {present}")
        if isinstance(devices, list) and any(d >= present for d in wanted):
            raise ConfigError(keys["devices"], f"GPU ids {devices} asked for, but this machine has ids 0..{present - 1}")


def check_precision(train: Any, trainer: Any) -> str:
    """The precision ``trainer`` will really train in; refused when it is not the one asked for."""
    asked = str(train.precision)
    wanted = CANONICAL_PRECISION.get(asked, asked)
    really = str(trainer.precision)
    if really != wanted:
        accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
        raise ConfigError("train.precision", (
            f"{asked} is not available on {accelerator}: Lightning would train in {really} instead; "
            f"set train.precision={really} to accept that, or 32-true"))
    return really
