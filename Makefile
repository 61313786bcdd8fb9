# voxlive — `make serve` sets up and serves; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help setup web serve test test-fast format lint clean build run stop

help:
	@echo "make serve   set up .venv (and the web app) and serve on http://$(HOST):$(PORT)"
	@echo "make test    run every test (unit, integration, end-to-end in Chromium)"
	@echo "make format  ruff format;  make lint  ruff check + mypy (+ web lint)"
	@echo "make clean   remove build output, caches and .venv"
	@echo "make build | run | stop   Docker Compose: front end :8001, back end :8000"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

# The browser app (built only when web/ exists and npm is available).
web:
	@if [ -f web/package.json ]; then \
	  if command -v npm >/dev/null; then \
	    cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build; \
	  else echo "npm not found: serving the API without the web app"; fi; \
	fi

serve: setup web
	$(BIN)/voxlive serve --host $(HOST) --port $(PORT)

test: setup web
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ -f web/package.json ]; then cd web && npm test; fi

test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench
	@if [ -d web/node_modules ]; then cd web && npx prettier --write src; fi

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
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
