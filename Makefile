# voxlive — `make serve` sets up and serves; `make test` sets up what testing needs and runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
FRONTS ?= 3
MODEL ?= auto
RUN_DIR ?= .cluster

.PHONY: help setup setup-test system-deps web wheel serve cluster cluster-stop test test-fast mutation format lint clean build run stop

help:
	@echo "make serve   set up .venv (runtime dependencies + the web app) and serve on http://$(HOST):$(PORT)"
	@echo "make test    install what testing needs (Python extras, Debian packages) and run every test"
	@echo "make cluster FRONTS=3 [MODEL=pitch]   HAProxy on :$(PORT) in front of N fronts; make cluster-stop"
	@echo "make wheel   build dist/voxlive-*.whl with the web app inside"
	@echo "make format  ruff format;  make lint  ruff check + mypy (+ web lint)"
	@echo "make clean   remove build output, caches and .venv"
	@echo "make build | run | stop   Docker Compose: front end :8001, back end :8000"

# One venv, grown in steps: serving needs the runtime dependencies only; `make test` adds the
# test extras, `make lint`/`make format` the dev extras. Each stamp reinstalls when the
# dependency lists change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml constraints.txt setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.$(if $(filter serve,$*),,[$*])'
	touch $@

setup: $(VENV)/.installed-serve
setup-test: $(VENV)/.installed-test

# Debian packages the tests need (Chromium, nginx, fonts, the image tools): installed when this
# user can (root or password-less sudo), else one message with the command to run.
system-deps:
	@scripts/system-deps.sh

# The browser app (built only when web/ exists and npm is available).
web:
	@if [ -f web/package.json ]; then \
	  if command -v npm >/dev/null; then \
	    cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build; \
	  else echo "npm not found: serving the API without the web app"; fi; \
	fi

# A wheel that serves the page: setup.py builds web/ into the package.
wheel: setup
	rm -rf build dist  # build/ may hold modules since deleted from src/
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .
	@ls dist/*.whl

serve: setup web
	$(BIN)/voxlive serve --host $(HOST) --port $(PORT)

# Several fronts on this machine behind HAProxy (README "Across machines"): fronts on PORT+1…,
# their agents on PORT+101…, pids and logs in RUN_DIR.
cluster: setup web
	FRONTS=$(FRONTS) MODEL=$(MODEL) HOST=$(HOST) PORT=$(PORT) RUN_DIR=$(RUN_DIR) BIN=$(BIN) \
	  scripts/cluster.sh start

cluster-stop:
	RUN_DIR=$(RUN_DIR) scripts/cluster.sh stop

test: system-deps setup-test web
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ -f web/package.json ]; then cd web && npm test; fi

test-fast: setup-test
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests setup.py
	$(BIN)/ruff check --fix src tests setup.py
	@if [ -d web/node_modules ]; then cd web && npx prettier --write src; fi

# Mutation testing of protocol/, audio/, pipeline/, server/ (docs/mutation.md): minutes, not per CI run.
mutation: $(VENV)/.installed-mutation
	BIN=$(BIN) scripts/mutation.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check src tests setup.py
	$(BIN)/ruff check src tests setup.py
	$(BIN)/mypy
	@if [ -d web/node_modules ]; then cd web && npm run lint && npx tsc --noEmit -p .; fi

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache artifacts \
	  web/dist web/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Docker Compose deployment (front end on :8001, back end on :8000).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

build:
	$(COMPOSE) build

run:
	$(COMPOSE) up -d
	@echo "front end: http://localhost:8001   back end: ws://localhost:8000/audio"

stop:
	$(COMPOSE) down
