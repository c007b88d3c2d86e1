# Quick start: `make run` (serve on the embedded store) and `make test` (the whole suite).
# Everything the project needs is installed from here: the .venv (editable, with dev
# extras) and the npm packages of the Durable Object Worker (workerd, wrangler), which go to
# the per-user cache an installed dolite uses too (~/.cache/dolite/worker-<hash>).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all setup worker-npm debian-deps run test torture bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) worker-npm debian-deps

# Debian packages some tests drive: chromium and chromedriver (the web console's browser
# tests, tests/console, through Selenium) and strace (kill -9 at every step of a storage
# checkpoint, tests/torture/test_checkpoint_kill.py). apt runs only when one is missing
# (and only as root: otherwise this says what to install).
DEBIAN_DEPS := chromium chromium-driver strace
debian-deps: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v strace >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q $(DEBIAN_DEPS); \
	  else echo "some tests need: apt-get install $(DEBIAN_DEPS)"; fi

# npm ci on first use only (a no-op once installed); a new package-lock gets a new directory.
worker-npm: $(STAMP)
	$(BIN)/dolite cloudflare install

run: setup
	$(BIN)/dolite serve --host 127.0.0.1 --port 8787

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

torture: setup
	DOLITE_TORTURE=long $(BIN)/python -m pytest -q tests/torture

bench: setup
	$(BIN)/dolite bench

clean:
	rm -rf $(VENV) .dolite .pytest_cache .hypothesis build dist
