"""Settings for every test of the repository (the core's and each plugin's)."""

import os

# Progress lines (aigc_core.progress) are for people watching a command; tests that assert on a
# command's stderr (one-line errors) predate them. Tests of progress set AIGC_PROGRESS themselves.
os.environ.setdefault("AIGC_PROGRESS", "off")
