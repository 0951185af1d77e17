# pingtree: a fresh machine needs nothing but these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install services services-or-embedded test coverage bench-smoke chaos-smoke lint mutation mutation-sample demo up bench migrate flower clean

install: $(BIN)/pingtree

$(BIN)/pingtree: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# setuptools' editable-install notice is a screenful of warnings about nothing to act on.
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[test,devtools,embedded]'
	@touch $@

services:
	@deploy/services.sh

# make test and make demo: a server not installed here is replaced by the embedded one (.embedded/).
services-or-embedded:
	@deploy/services.sh --or-embedded

# Branch coverage of the suite, measured in pytest and in every process it starts (workers,
# API, CLI, mock buyers), printed per module; below the floor the run fails. `-n auto`: the suite
# runs in PINGTREE_TEST_WORKERS pytest-xdist processes (3), each with its own test database and
# Redis db index; on the embedded servers, in one.
COVERAGE_FLOOR ?= 85

test: install services-or-embedded lint coverage

coverage: install services-or-embedded
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q -n auto -m "not bench and not chaos"
	@$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=$(COVERAGE_FLOOR)

# The benchmark's own smoke run (about a minute, asserts no speed): CI runs it beside `make test`.
bench-smoke: install services-or-embedded
	$(BIN)/pytest -q -m bench

# The short seeded fault run (`pingtree chaos --smoke`, about a minute): CI runs it beside `make test`.
chaos-smoke: install services-or-embedded
	$(BIN)/pytest -q -m chaos

lint: install
	$(BIN)/ruff check pipeline tasks config tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy pipeline/domain pipeline/protocols pipeline/service pipeline/adapters/store

# Only the demo, the tests, the chaos run and the bench reach buyers on 127.0.0.1 (and run the
# API without keys): `make up` keeps the SSRF guard on and needs PINGTREE_API_KEYS.
demo test coverage bench-smoke chaos-smoke bench chaos mutation mutation-sample: export PINGTREE_ALLOW_PRIVATE_BUYERS = 1
demo test coverage bench-smoke chaos-smoke bench chaos mutation mutation-sample: export PINGTREE_DEV = 1

# Mutation testing of the pure rules against the unit tests (minutes; not part of make test):
# prints the surviving mutants (`mutmut show NAME` shows one) and the score. [tool.mutmut] says which.
mutation: install
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 > .mutmut.log 2>&1 || (tail -20 .mutmut.log; exit 1)
	@$(BIN)/mutmut results
	@$(BIN)/mutmut export-cicd-stats > /dev/null
	@$(BIN)/python -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
	  print("mutation score: %d of %d killed (%.1f%%), %d survived, %d timed out, %d without a test" % ( \
	  s["killed"], s["total"], 100.0 * s["killed"] / max(1, s["total"]), s["survived"], s["timeout"], s["no_tests"]))'

# The same on a seeded sample of MUTATION_SAMPLE mutants (CI runs it; a minute or two): prints
# each uncaught mutant of the sample and fails under MUTATION_SAMPLE_FLOOR percent caught.
MUTATION_SAMPLE ?= 40
MUTATION_SEED ?= 1
MUTATION_SAMPLE_FLOOR ?= 90
mutation-sample: install
	$(BIN)/python tests/mutation_sample.py --count $(MUTATION_SAMPLE) --seed $(MUTATION_SEED) \
	  --floor $(MUTATION_SAMPLE_FLOOR)

migrate: install services
	$(BIN)/pingtree db migrate

demo: install services-or-embedded
	$(BIN)/pingtree demo

up: install services migrate
	$(BIN)/pingtree up

# A seeded fault run on its own redis-server and PostgreSQL cluster: CHAOS_SEEDS="1 2 3".
CHAOS_SEEDS ?= 1
chaos: install
	@for seed in $(CHAOS_SEEDS); do $(BIN)/pingtree chaos --seed $$seed $(CHAOS_ARGS) || exit 1; done

# Flower on 127.0.0.1:$(FLOWER_PORT) (default 5555), behind basic auth: Flower reads
# FLOWER_BASIC_AUTH=user:password itself; this target refuses to start without it.
flower: install
	@test -n "$$FLOWER_BASIC_AUTH" || { echo "set FLOWER_BASIC_AUTH=user:password first" >&2; exit 2; }
	$(BIN)/celery -A tasks flower --address=127.0.0.1 --port=$${FLOWER_PORT:-5555} --enable_events=False --max_tasks=10000

bench: install services
	$(BIN)/pingtree bench --out bench-results $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache bench-results chaos-results .demo *.egg-info .coverage .coverage.* mutants .mutmut.log .mutmut-sample.log
	@echo "kept .embedded/ (the embedded servers' data): rm -rf .embedded to wipe it"
