# `make demo` and `make test` each work on a fresh clone: they create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(wildcard plugins/aigc-*))
STAMP := $(VENV)/.installed

.PHONY: demo test install bench docs clean

$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt \
		-e ".[test]" $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aigc run configs/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

# docs/hooks.md and docs/configuration.md from the code (a test fails when they are stale)
docs: $(STAMP)
	$(PY) tools/gen_docs.py

clean:
	rm -rf runs .pytest_cache
