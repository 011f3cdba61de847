# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make demo   installs chronik into .venv and runs the narrated demo
#   make test   installs what the tests need and runs lint, types and tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB ?= chronik-demo.db

.PHONY: demo test lint types pytest bench soak backlog clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml benchmarks/requirements.txt Makefile
	$(BIN)/python -m pip install --quiet -e '.[postgres,nats,redis,rabbitmq,kafka,sqlalchemy,web,eventsourcing,otel,fastapi,crypto,bench-charts]' --group dev -r benchmarks/requirements.txt
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/chronik demo --db $(DEMO_DB)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests tools benchmarks
	$(BIN)/ruff format --check src tests tools benchmarks
	$(BIN)/lint-imports --no-cache

types: $(VENV)/.test-installed
	$(BIN)/mypy

pytest: $(VENV)/.test-installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint types pytest

# Benchmarks against eventsourcing and the raw drivers, and the DCB decisions against
# eventsourcing.dcb: tables on screen, JSON and Markdown in bench-results/ (bench.* and
# dcb.*). BENCH_ARGS="--quick" for a run of seconds, BENCH_ARGS="--only dcb" for DCB alone.
bench: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks --out bench-results $(BENCH_ARGS)

# A projection runner's memory over 10 minutes of steady writes on SQLite (RSS at the
# start and end; docs/benchmarks.md). Not part of bench: it takes the 10 minutes.
# SOAK_ARGS="--minutes 1" for a shorter run.
soak: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.soak --minutes 10 --out bench-results/soak.json $(SOAK_ARGS)

# Far behind and slow, without hurting anyone: a subscription and a projection runner
# catching up on a million events (peak RSS against before), and writers' events/s
# beside slow consumers against alone, on SQLite and PostgreSQL (docs/benchmarks.md).
# Not part of bench or test: it takes minutes. BACKLOG_ARGS="--quick" for seconds.
backlog: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks.backlog --out bench-results/backlog.json $(BACKLOG_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build dist
