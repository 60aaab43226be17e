# Two commands on a fresh machine: `make demo` and `make test`. Each creates what it needs
# from nothing but the machine's python3, and installs exactly the committed uv.lock.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# uv itself lives in its own small environment, pinned here; it installs everything else
UV_VERSION := 0.13.9
UV_HOME    := .uv
UV         := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON=$(PYTHON) UV_PYTHON_DOWNLOADS=never $(UV_HOME)/bin/uv
SOURCES    := coc_etl pipelines assets warehouse coc_simulator

.PHONY: demo cluster-demo test test-fast check-lock lint types bench lock upgrade sync-dev clean

$(UV_HOME)/bin/uv:
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

check-lock: $(UV_HOME)/bin/uv
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }

# --compile-bytecode: every process of the demo, and of a deployment, would otherwise compile
# Dagster and the rest from source where PYTHONDONTWRITEBYTECODE is set (container images
# commonly set it): seconds of CPU per process.
demo: check-lock
	$(UV) sync --frozen --quiet --compile-bytecode
	$(BIN)/coc-etl demo

# a distributed deployment on loopback (deploy/): Redis, Postgres, webserver, daemon, 2 workers
cluster-demo: check-lock
	$(UV) sync --frozen --quiet --inexact --extra cluster --compile-bytecode
	$(BIN)/python -m coc_etl.cluster

sync-dev: check-lock
	$(UV) sync --frozen --quiet --extra dev --extra bench --extra cluster

# The suite on 3 pytest-xdist workers: most tests wait on processes, HTTP and disks, so a
# third worker still gains on 2 cores. Tests that share one expensive set-up (the cluster,
# chromium, the planted days) are kept on one worker: see tests/support/xdist_groups.py.
TEST_WORKERS ?= 3
# Bytecode is written while the tests run, even where PYTHONDONTWRITEBYTECODE is set: the
# suite starts hundreds of Python processes (Dagster, the CLI, workers), and each would
# otherwise compile every module it imports (dagster alone: seconds of CPU) from source.
PYTEST       := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test: sync-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy $(SOURCES)
	$(BIN)/lint-imports
	$(PYTEST)

test-fast: sync-dev
	$(PYTEST) -m "not slow"

lint: sync-dev
	$(BIN)/ruff format --check . && $(BIN)/ruff check . && $(BIN)/mypy $(SOURCES) && $(BIN)/lint-imports

types: sync-dev
	$(BIN)/mypy $(SOURCES)

bench: sync-dev
	$(BIN)/python -m bench

# Regenerate the lock on purpose: `make lock` keeps locked versions where pyproject allows them,
# `make upgrade` takes the newest releases pyproject allows.
lock: $(UV_HOME)/bin/uv
	$(UV) lock

upgrade: $(UV_HOME)/bin/uv
	$(UV) lock --upgrade

clean:
	rm -rf .demo bench/results/tmp .pytest_cache .mypy_cache
