# pingtree: a fresh machine needs nothing but these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PINGTREE_ALLOW_PRIVATE_BUYERS ?= 1

.PHONY: install services test coverage bench-smoke lint demo up bench migrate clean

install: $(BIN)/pingtree

$(BIN)/pingtree: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

services:
	@deploy/services.sh

# Branch coverage of the suite, measured in pytest and in every process it starts (workers,
# API, CLI, mock buyers), printed per module; below the floor the run fails.
COVERAGE_FLOOR ?= 85

test: install services lint coverage

coverage: install services
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q -m "not bench"
	@$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=$(COVERAGE_FLOOR)

# The benchmark's own smoke run (about a minute, asserts no speed): CI runs it beside `make test`.
bench-smoke: install services
	$(BIN)/pytest -q -m bench

lint: install
	$(BIN)/ruff check pipeline tasks config tests
	$(BIN)/lint-imports --no-cache

migrate: install services
	$(BIN)/pingtree db migrate

demo: install services
	$(BIN)/pingtree demo

up: install services migrate
	$(BIN)/pingtree up

bench: install services
	$(BIN)/pingtree bench --out bench-results $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench-results .demo *.egg-info .coverage .coverage.*
