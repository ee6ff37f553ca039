# Ventanilla — the two commands a fresh machine needs are `make run` and `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/example.toml
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test

.PHONY: run test bench bench-pg lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TESTSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

## run: create the venv, install, migrate and start the daemon on SQLite (loopback ports)
run: $(STAMP)
	$(BIN)/ventanilla --config $(CONFIG) db upgrade
	$(BIN)/ventanilla --config $(CONFIG) config check
	@echo "Starting Ventanilla: web form http://127.0.0.1:8080/form, API http://127.0.0.1:8080/api/v1/, console http://127.0.0.1:8080/console/log, metrics http://127.0.0.1:8080/metrics"
	$(BIN)/ventanilla --config $(CONFIG) serve

## test: install what the tests need, then run the whole suite (lint and types included)
test: $(TESTSTAMP)
	bash tests/install-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -ra

## bench: run the benchmarks in bench/ and write bench/results/*.json (median of 3 rounds)
bench: $(STAMP)
	$(BIN)/python bench/intake_http.py --rounds 3
	$(BIN)/python bench/intake_http.py --mixed --rounds 3
	$(BIN)/python bench/intake_smtp.py --rounds 3
	$(BIN)/python bench/sms_intake.py --rounds 3
	$(BIN)/python bench/dispatch.py --rounds 3
	$(BIN)/python bench/log.py
	$(BIN)/python bench/telegram_intake.py --rounds 3

## bench-pg: the HTTP intake benchmark against the local PostgreSQL (a scratch database)
bench-pg: $(STAMP)
	$(BIN)/python bench/intake_http.py --rounds 3 --database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

lint: $(TESTSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TESTSTAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
