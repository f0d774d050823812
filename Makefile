# Every target creates .venv on first use, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast check clean

# The project installs with uv (from PyPI, into .venv): it resolves and unpacks in parallel, ~9 s where pip took ~50
# on this project's 2-core machine, which both `make test` and the fast loop pay on a fresh clone. Should uv fail
# (an index or certificate it cannot use), pip installs the same thing.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv

INSTALL = install() { $(BIN)/uv pip install --quiet --python $(BIN)/python -e "$$1" \
	|| { echo "uv could not install $$1; trying pip"; $(BIN)/python -m pip install --quiet -e "$$1"; }; }; install

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(INSTALL) .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(INSTALL) '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(INSTALL) '.[dev,bench]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/cc-api run $(ARGS)

# The tests run on WORKERS pytest-xdist processes, a test file per worker at a time (its module gateway is started
# once, and a file's tests never race each other): most of a test's time is spent waiting on the gateway, Claude
# Code and the mock model, so 3 workers pay even on 2 cores. Files are handed out in tests/conftest.py's order, the
# longest first (xdist's own reorder, by number of tests, left the longest file alone at the end).
# `make test WORKERS=0` runs them one by one, in-process.
WORKERS ?= 3
XDIST = -n $(WORKERS) --dist loadfile --no-loadscope-reorder
# Bytecode caching on for the tests even where the environment turns it off: pytest rewrites the asserts of every
# test module and of its plugins' (schemathesis: ~300 modules) in every test process, and keeps the result only as
# bytecode; without it each worker paid ~3 CPU-seconds more at every start.
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

test: $(VENV)/.installed-dev
	$(PYTEST) $(XDIST) $(PYTEST_ARGS)

# Everything but the tests marked slow (each takes several seconds or more: restarts, crashes, pools, load, plain
# install, browser): for the edit-test loop; CI runs `make test`.
test-fast: $(VENV)/.installed-dev
	$(PYTEST) $(XDIST) -m "not slow" $(PYTEST_ARGS)

# Format check and lint (ruff) and type-check (mypy), configured in pyproject.toml; CI runs this before the tests.
check: $(VENV)/.installed-dev
	$(BIN)/ruff format --check ccapi tests bench
	$(BIN)/ruff check ccapi tests bench
	$(BIN)/mypy ccapi

clean:
	rm -rf $(VENV) build dist *.egg-info

# Offline benchmarks on the mock model: each prints its tables and writes bench/results/<name>.{json,md}, with
# progress lines on stderr as it goes; then the charts in docs/images/ are drawn from those files
# (`python -m bench.charts` redraws them alone). matplotlib comes from the `bench` extra.
.PHONY: bench charts
bench: $(VENV)/.installed-bench
	@start=$$(date +%s); n=0; \
	for name in token_burn overhead stream scale; do \
		n=$$((n + 1)); echo "make bench: [$$n/4] bench.$$name, $$(( $$(date +%s) - start )) s so far"; \
		began=$$(date +%s); $(BIN)/python -m bench.$$name || exit 1; \
		echo "make bench: [$$n/4] bench.$$name took $$(( $$(date +%s) - began )) s"; \
	done; \
	$(BIN)/python -m bench.charts || exit 1; \
	echo "make bench: all benchmarks and charts in $$(( $$(date +%s) - start )) s"

charts: $(VENV)/.installed-bench
	$(BIN)/python -m bench.charts

# The console rendered by headless Chromium (Debian's; installed with apt when missing) into docs/images/console*.png,
# on a `cc-api run --mock-model` gateway with a few scripted sessions.
.PHONY: screenshots
screenshots: $(VENV)/.installed-dev
	$(BIN)/python -m bench.screenshots $(ARGS)

# The real Hermes Agent and OpenClaw through the compat endpoints, on the mock model (installs them into .clients/;
# takes minutes; not part of make test): bench/results/clients.{json,md}.
.PHONY: clients
clients: $(VENV)/.installed-dev
	$(BIN)/python -m bench.clients $(ARGS)

# The long day with the real clients (Hermes compressing, OpenClaw compacting, flushing memory, polling heartbeats
# across midnight under faketime; one client at a time, many minutes): bench/results/clients_longday.{json,md}.
# ARGS="--label NAME" names this tree's rows; ARGS=--docs rewrites docs/compat.md's before/after table.
.PHONY: clients-longday
clients-longday: $(VENV)/.installed-dev
	$(BIN)/python -m bench.longday $(ARGS)
# The real acpx (npm; Node 24 from npm, into .clients/) driving `cc-api acp` on the mock model: two prompts across
# agent processes on one session, and a Bash call approved in acpx. Not part of make test: bench/results/acpx.{json,md}.
.PHONY: acpx
acpx: $(VENV)/.installed-dev
	$(BIN)/python -m bench.acpx
