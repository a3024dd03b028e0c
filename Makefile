# The README's two commands are `make demo` and `make test`; both build the venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-realkube control-plane lint check bench bench-sweep clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gepetto demo $(ARGS)

test: $(STAMP) control-plane
	$(BIN)/python -m pytest -q

# Only the real-Kubernetes tier (README, "Test tiers").
test-realkube: $(STAMP) control-plane
	$(BIN)/python -m pytest -q -m realkube

# The real tier's etcd, kube-apiserver and kube-controller-manager, built once per version into
# ~/.cache/gepetto/control-plane (about 15 min on 2 cores the first time, nothing afterwards).
# Where they cannot be built this says why and the tests skip that tier loudly (fail if CI=true).
control-plane: $(STAMP)
	@if [ "$$GEPETTO_REALKUBE" = skip ]; then echo "control-plane: GEPETTO_REALKUBE=skip"; \
	else PYTHON=$(BIN)/python scripts/control-plane build || \
		echo "control-plane: NOT BUILT; the realkube tier will be skipped (a failure with CI=true)"; fi

lint: $(STAMP)
	$(BIN)/vulture
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

# The out-of-sample sweep (hours on 2 cores; it resumes from bench/sweep_runs.jsonl).
bench-sweep: $(STAMP)
	$(BIN)/python -m bench.sweep

clean:
	rm -rf $(VENV) .gepetto .pytest_cache .mypy_cache .ruff_cache
