# Ostracon: every set-up step lives here, so a fresh clone needs only `make run` / `make test`.
# Area-specific targets live in mk/*.mk (storage, sync, web, e2e, ...); they add themselves
# to TEST_PREREQS / TEST_STEPS / BENCH_STEPS / RUN_PREREQS below.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.stamp-deps
HOST ?= 127.0.0.1
PORT ?= 8787
DATA ?= .data

# Filled in by mk/*.mk fragments.
TEST_PREREQS :=
TEST_STEPS :=
BENCH_STEPS :=
RUN_PREREQS :=

.PHONY: all setup test test-py run bench clean help
all: test

-include mk/*.mk

help:
	@echo "make run    - install everything and start relay + web app on http://$(HOST):$(PORT)"
	@echo "make test   - install everything (incl. Debian chromium) and run every test"
	@echo "make bench  - run the benchmarks side by side with their peers"

$(PY_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

setup: $(PY_STAMP)

test-py: setup
	$(VPY) -m pytest tests

test: setup $(TEST_PREREQS)
	$(MAKE) test-py $(TEST_STEPS)

run: setup $(RUN_PREREQS)
	$(VENV)/bin/ostracon serve --host $(HOST) --port $(PORT) --data $(DATA)

bench: setup
	$(VPY) bench/run.py $(BENCH_ARGS)
	$(if $(BENCH_STEPS),$(MAKE) $(BENCH_STEPS))

clean:
	rm -rf $(VENV) dist build node_modules .data
