# The two commands a new user types first: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install system-tools demo test lint check bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# tmux, dnsmasq and Knot: apt-get installs whichever is missing (with sudo when not root).
system-tools:
	.ci/system-tools

demo: install system-tools
	$(VENV)/bin/cockpit demo

test: install system-tools
	$(VENV)/bin/pytest -q

# ruff (lint and format), mypy and the import contracts: seconds.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

check: lint
	$(VENV)/bin/pytest -q

# Every benchmark against its baseline, as one table (bench/README.md); --json for the figures.
bench: install system-tools
	$(VENV)/bin/python bench/run_all.py

# The quick form of every benchmark, in under two minutes: each runs and prints every figure.
bench-smoke: install system-tools
	$(VENV)/bin/python bench/run_all.py --smoke

clean:
	rm -rf $(VENV) .cockpit .mypy_cache .ruff_cache
