"""Let a CPU training or sampling loop reuse freed memory instead of handing it back every step.

glibc serves large allocations with ``mmap`` and returns them with ``munmap`` when they are
freed, under a threshold it moves by itself. A network on the CPU frees and reallocates the
same activation buffers at every step, so each step pays page faults for memory it just gave
back: about a fifth of DDPM sampling's CPU time went to the kernel (docs/benchmarks.md,
"Memory allocator"). Raising the mmap and trim thresholds keeps those pages in the heap.

The setting is process-wide and idempotent. It is left alone when the user tuned malloc
through ``MALLOC_*`` variables, when ``AIGC_MALLOC_TUNING=0``, and off glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Allocations up to this size come from the heap (glibc's upper limit on 64-bit systems).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept for reuse before it is returned to the kernel.
TRIM_THRESHOLD = 256 * 1024 * 1024
#: Turns the tuning off when set to 0.
ENV = "AIGC_MALLOC_TUNING"

_done: bool | None = None


def user_tuned() -> bool:
    return os.environ.get(ENV, "1") == "0" or any(key.startswith("MALLOC_") for key in os.environ)


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are raised."""
    global _done
    if _done is None:
        _done = False
        if not user_tuned() and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            mallopt = ctypes.CDLL(None).mallopt
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
