# The README's two commands are `make demo` and `make test`; both build the venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gepetto demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check gepetto_core gepetto_sandbox bot tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: $(STAMP)
	$(BIN)/python -m bench.bench_planner
	$(BIN)/python -m bench.bench_sync
	$(BIN)/python -m bench.bench_ack
	$(BIN)/python -m bench.bench_render
	# The sweep of issue #25 (hours on 2 cores; it resumes from bench/sweep_runs.jsonl).
	$(BIN)/python -m bench.sweep

clean:
	rm -rf $(VENV) .gepetto .pytest_cache .mypy_cache .ruff_cache
