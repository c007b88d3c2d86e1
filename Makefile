# Quick start: `make run` (serve on the embedded store) and `make test` (the whole suite).
# Everything the project needs is installed from here: the .venv (editable, with dev
# extras) and the npm packages of the Durable Object Worker (workerd, wrangler), which go to
# the per-user cache an installed dolite uses too (~/.cache/dolite/worker-<hash>).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all setup worker-npm run test torture bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) worker-npm

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
