# Two commands do all set-up on a fresh machine: `make run` (the default pipeline) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# dvc.yaml's stage commands call `forgeml` from the project's environment.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run run-lm run-recsys run-sentiment run-gan run-ssl server test test-slow test-long lint bench clean

$(STAMP): pyproject.toml constraints.txt requirements-data.txt
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro

# The tiers run on TEST_WORKERS pytest-xdist workers (0: in one process), each test file on one
# worker (its module fixtures are built once), each worker's torch on TEST_THREADS threads so
# that two workers' threads do not oversubscribe the two cores of a small machine.
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
PYTEST := OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PYTEST)

test-slow: $(STAMP)
	$(PYTEST) -m "slow and not long"

# Outside CI's budget, one test at a time (their timings are results): the shipped sentiment
# (~35 min on 2 cores), SSL (~12 min), GAN (~15 min) and LM (~7 min) pipelines end to end, the
# seed CNN on Fashion-MNIST, the MNIST-5k and recommender accuracy targets, and the sentiment,
# GAN, k-fold, multi-node, private-recommender and privacy-table suites on slices (~45 min).
test-long: $(STAMP)
	$(BIN)/python -m pytest -m long

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_lm.py
	$(BIN)/python benchmarks/bench_sentiment.py
	$(BIN)/python benchmarks/bench_serving.py

run-lm: $(STAMP)
	$(BIN)/dvc repro pipelines/lm/dvc.yaml

run-recsys: $(STAMP)
	$(BIN)/dvc repro pipelines/recsys/dvc.yaml

run-sentiment: $(STAMP)
	$(BIN)/dvc repro pipelines/sentiment/dvc.yaml

run-gan: $(STAMP)
	$(BIN)/dvc repro pipelines/gan/dvc.yaml

# The team's MLflow tracking server on PostgreSQL (settings: scripts/team_server.sh).
server: $(STAMP)
	bash scripts/team_server.sh

run-ssl: $(STAMP)
	$(BIN)/dvc repro pipelines/ssl/dvc.yaml

clean:
	rm -rf data/prepared models metrics plots reports eval
