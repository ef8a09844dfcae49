# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install proxy browser run serve test stop-local soak bench bench-small lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@found=$$($(PYTHON) -c 'import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 11))' 2>/dev/null) \
	  || { echo "make: Python 3.11 or newer is needed; $(PYTHON) is $${found:-not found} (try make PYTHON=python3.11 ...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Where the configured Postgres or Redis does not answer, config/local_stores.py starts a
# private one under .local/ (and says so) and exports its URL; `make stop-local` stops them.
run: install
	@stores=$$($(BIN)/python -m config.local_stores env) && eval "$$stores" \
	  && $(BIN)/scrubs-analytics db upgrade >/dev/null \
	  && $(BIN)/scrubs-analytics demo seed >/dev/null \
	  && exec $(BIN)/gunicorn -c config/gunicorn.conf.py app:app

test: install proxy browser
	@stores=$$($(BIN)/python -m config.local_stores env --tests) && eval "$$stores" \
	  && exec $(BIN)/pytest $(PYTEST_ARGS)

stop-local:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m config.local_stores stop; fi

# nginx, the front proxy of the production topology (docs/operations.md),
# from Debian's package; its tests need it too.
proxy:
	@test -x /usr/sbin/nginx || .ci/install-proxy || echo "make: nginx could not be installed; the front-proxy tests will fail" >&2

# Chromium and its WebDriver, from Debian's packages, for the browser test of GET /docs.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || .ci/install-browser || echo "make: chromium could not be installed; the browser test of /docs will fail" >&2

# The production topology on this machine: nginx on PROXY_LISTEN in front of gunicorn.
serve: install proxy
	$(BIN)/scrubs-analytics db upgrade >/dev/null
	exec $(BIN)/python -m config.front_proxy --listen $${PROXY_LISTEN:-127.0.0.1:8080} --upstream $${BIND:-127.0.0.1:8000} -- $(BIN)/gunicorn -c config/gunicorn.conf.py app:app

# The reliability scenarios again, each under a minute of load (about 10 minutes in all).
soak: install proxy
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
