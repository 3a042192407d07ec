# tokenhub: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-reliability lint typecheck check ui bench kafka-up kafka-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## Set everything up and run the pipeline end to end on a local broker.
demo: $(STAMP)
	$(BIN)/tokenhub demo

## The whole test suite (unit + integration against a real broker).
test: $(STAMP)
	$(BIN)/pytest -q -m "not slow" tests

## Unit tests only (no broker).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration" tests

## The full fault-injection suite.
test-reliability: $(STAMP)
	$(BIN)/pytest -q -m reliability tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

ui: $(STAMP)
	$(BIN)/tokenhub ui

bench: $(STAMP)
	$(BIN)/tokenhub bench

kafka-up: $(STAMP)
	$(BIN)/tokenhub kafka up

kafka-down: $(STAMP)
	$(BIN)/tokenhub kafka down

clean:
	-$(BIN)/tokenhub kafka down
	rm -rf .tokenhub
