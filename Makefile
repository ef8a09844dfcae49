# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test soak bench bench-small lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/scrubs-analytics db upgrade >/dev/null
	$(BIN)/scrubs-analytics demo seed >/dev/null
	exec $(BIN)/gunicorn -c config/gunicorn.conf.py app:app

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The reliability scenarios again, each under a minute of load (about 10 minutes in all).
soak: install
	RELIABILITY_SECONDS=$${RELIABILITY_SECONDS:-60} $(BIN)/pytest -m reliability -s $(PYTEST_ARGS)

# The benchmarks of the README's Performance section on the standard dataset (5 million events; under 15 minutes
# on 2 cores). Writes bench/results/latest.json and latest.png.
bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-small: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench.run --small --duration 5 --output /tmp/scrubs-bench-small.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
