# Quick start: `make run` (serve on the embedded store) and `make test` (the whole suite).
# Everything the project needs is installed from here: the .venv (editable, with dev
# extras) and the npm packages of the Durable Object Worker (workerd, wrangler), which go to
# the per-user cache an installed dolite uses too (~/.cache/dolite/worker-<hash>).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all setup worker-npm console-deps run test torture bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) worker-npm console-deps

# The web console's browser tests (tests/console) drive Debian's chromium headless through
# Selenium (a dev extra) and chromedriver. apt runs only when one of them is missing (and
# only as root: otherwise this says what to install).
console-deps: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	  else echo "console tests need chromium and chromedriver: apt-get install chromium chromium-driver"; fi

# npm ci on first use only (a no-op once installed); a new package-lock gets a new directory.
worker-npm: $(STAMP)
	$(BIN)/dolite cloudflare install

run: setup
	$(BIN)/dolite serve --storage lmdb:./.dolite --host 127.0.0.1 --port 8787

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

torture: setup
	DOLITE_TORTURE=long $(BIN)/python -m pytest -q tests/torture

bench: setup
	$(BIN)/dolite bench

clean:
	rm -rf $(VENV) .dolite .pytest_cache .hypothesis build dist
