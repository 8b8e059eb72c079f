# Two entry points for a fresh machine: `make demo` and `make test`. Each builds the venv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hedged demo --duration 60

# The whole suite, 4 workers: its time is spent waiting (processes starting, outages waited out), not computing,
# so 4 workers pay on 2 cores. Isolation rules for tests: tests/conftest.py.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --dist loadgroup

# The pure core and unit tests: no database server, broker or exchange process; under a minute.
FAST_TESTS := tests/core tests/alerts tests/sim/test_engine.py tests/test_cli_imports.py tests/test_docs.py
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(FAST_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check hedged tests bench
	$(BIN)/mypy --strict hedged/ tests/ bench/

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
