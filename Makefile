# Tocsin — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install system-deps clean histories

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## run: Temporal dev server (gRPC :7233, UI :8233) + worker + gateway (:8080). Ctrl-C stops all.
run: $(STAMP)
	$(BIN)/tocsin dev

## system-deps: Debian packages the integration tests use (compose validator, Alertmanager, Prometheus).
system-deps:
	bash scripts/install-system-deps.sh

## lint: ruff (lint and format check) and mypy, as configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint and type checks, then the whole suite (unit, time-skipping workflow tests, integration against a real dev server).
test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

## bench: CI event → Slack, alert webhook → Slack (idle, and under 50 alerts/s), gateway ingest rate, a 5,000-alert storm on one paced channel; each beside raw Temporal.
bench: $(STAMP)
	$(BIN)/python -m bench.ci_to_slack
	$(BIN)/python -m bench.alert_to_slack
	$(BIN)/python -m bench.alert_under_load
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.storm
	$(BIN)/python -m bench.new_run --modules

## histories: re-record tests/histories/*.json (one scenario per workflow type, time-skipping server) from this tree.
histories: $(STAMP)
	$(BIN)/python scripts/record_histories.py

clean:
	rm -rf $(VENV) .tocsin *.egg-info
