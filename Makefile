# pingtree: a fresh machine needs nothing but these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PINGTREE_ALLOW_PRIVATE_BUYERS ?= 1

.PHONY: install services test lint demo up bench migrate clean

install: $(BIN)/pingtree

$(BIN)/pingtree: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

services:
	@deploy/services.sh

test: install services
	$(BIN)/ruff check pipeline tasks config tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

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
	rm -rf $(VENV) .pytest_cache bench-results .demo *.egg-info
