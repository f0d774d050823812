# Every target creates .venv on first use, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/cc-api run $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (load, plain install, browser): for the edit-test loop; CI runs `make test`.
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Lint (ruff, configured in pyproject.toml) and type-check (mypy); CI runs this before the tests.
check: $(VENV)/.installed-dev
	$(BIN)/ruff check ccapi tests bench
	$(BIN)/mypy ccapi

clean:
	rm -rf $(VENV) build dist *.egg-info

# Offline benchmarks on the mock model: each prints its tables and writes bench/results/<name>.{json,md}.
.PHONY: bench
bench: $(VENV)/.installed-dev
	@start=$$(date +%s); \
	for name in token_burn overhead stream scale; do \
		began=$$(date +%s); $(BIN)/python -m bench.$$name || exit 1; \
		echo "bench.$$name: $$(( $$(date +%s) - began )) s"; \
	done; \
	echo "make bench: all benchmarks in $$(( $$(date +%s) - start )) s"

# The real Hermes Agent and OpenClaw through the compat endpoints, on the mock model (installs them into .clients/;
# takes minutes; not part of make test): bench/results/clients.{json,md}.
.PHONY: clients
clients: $(VENV)/.installed-dev
	$(BIN)/python -m bench.clients $(ARGS)
