"""Which process of a distributed launch this is, before Lightning has set anything up."""

from __future__ import annotations

import os

_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


def launcher_rank() -> int:
    """0 on the process that owns the run directory; launchers (Lightning, torchrun, SLURM) say which."""
    for var in _RANK_VARIABLES:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0
