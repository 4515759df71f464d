# The two commands a new user types first: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install system-tools convex-clients demo test lint check bench bench-smoke clean

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

# Convex's official clients (the `convex` npm package), which tests run against the stand-in.
CONVEX_CLIENTS = tests/convex_clients/node_modules/.package-lock.json
$(CONVEX_CLIENTS): tests/convex_clients/package-lock.json
	npm ci --prefix tests/convex_clients --no-audit --no-fund --loglevel=error

convex-clients: system-tools $(CONVEX_CLIENTS)

test: install system-tools convex-clients
	$(VENV)/bin/pytest -q

# ruff (lint and format), mypy and the import contracts: seconds.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

check: lint convex-clients
	$(VENV)/bin/pytest -q

# Every benchmark against its baseline, as one table (bench/README.md); --json for the figures.
bench: install system-tools
	$(VENV)/bin/python bench/run_all.py

# The quick form of every benchmark, in under two minutes: each runs and prints every figure.
bench-smoke: install system-tools
	$(VENV)/bin/python bench/run_all.py --smoke

clean:
	rm -rf $(VENV) .cockpit .mypy_cache .ruff_cache
