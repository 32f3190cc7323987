# Driftwarden: `make demo` runs the monitor on synthetic traffic, `make test` runs lint, types and every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ARGS ?= --duration 120 --rate 100
PYTEST_ARGS ?=

.PHONY: demo test lint unit integration bench schemas clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/driftwarden up --demo $(DEMO_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy stream tests benchmarks
	$(BIN)/lint-imports

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

integration: $(VENV)/.installed-dev
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/driftwarden bench

schemas: $(VENV)/.installed
	$(BIN)/driftwarden schemas export --dir schemas

clean:
	rm -rf .driftwarden .pytest_cache .mypy_cache .ruff_cache
