"""Settings for every test of the repository (the core's and each plugin's)."""

import os

# Progress lines (aigc_core.contract.progress) are for people watching a command; tests that assert on a
# command's stderr (one-line errors) predate them. Tests of progress set AIGC_PROGRESS themselves.
os.environ.setdefault("AIGC_PROGRESS", "off")

# One torch thread per test process (and the CLI processes tests start): the suite's models are
# tiny, and on a 2-core machine with other work beside it a second thread mostly waits on the first
# (a DDPM training step cost 0.21 CPU-s with two threads against 0.03 with one, at load 6).
# Set OMP_NUM_THREADS yourself to test with more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
