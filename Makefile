# Two commands do all set-up: `make run` and `make test`. Both bootstrap .venv first:
# `make run` installs only what serving needs (the server extra), `make test` adds the
# development tools on top. Each step leaves a stamp in .venv, so a second run does
# nothing until pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --progress-bar on
VENV_STAMP := $(VENV)/.created-stamp
SERVE_STAMP := $(VENV)/.server-stamp
DEV_STAMP := $(VENV)/.dev-stamp

.PHONY: run test lint typecheck bench clean

$(VENV_STAMP):
	@echo "==> creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	touch $@

$(SERVE_STAMP): pyproject.toml $(VENV_STAMP)
	@echo "==> installing convstore and what serving needs (.[server]) into $(VENV)"
	$(PIP) -e '.[server]'
	touch $@

$(DEV_STAMP): pyproject.toml $(SERVE_STAMP)
	@echo "==> installing the development tools (.[dev]) into $(VENV)"
	$(PIP) -e '.[dev]'
	touch $@

run: $(SERVE_STAMP)
	@echo "==> starting convstore serve --demo-user (Ctrl-C stops it)"
	$(BIN)/convstore serve --demo-user

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/coverage erase
	$(BIN)/pytest --cov --cov-report=term

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_files.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_postgres.py

clean:
	rm -rf $(VENV) .convstore .pytest_cache .mypy_cache .ruff_cache .coverage* htmlcov
