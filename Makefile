# Front door of the project: `make` lists the targets.
# Every variable below can be overridden from the environment or the command line,
# e.g. `make run LB_PORT=9090` or `DATABASE_URL=postgresql://... make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV           ?= .venv
PY             ?= $(VENV)/bin/python
PYTEST_ARGS    ?=
COMPOSE        ?= docker-compose
# LB_PORT, API_PORT, REALTIME_PORTS, DATABASE_URL, REDIS_URL: from the environment or
# the command line; their defaults are in services/shared/defaults.py.

.PHONY: help venv install run migrate test test-unit test-integration compose-config lint clean bench bench-rooms bench-room-state bench-deps bench-rest bench-profile bench-connects

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: ## Create .venv with the project and its test dependencies (no system packages)
	./scripts/bootstrap.sh --python-only

install: ## Install system packages (as root), start Postgres/Redis, npm packages, create .venv
	./scripts/bootstrap.sh

run: install ## Run the whole stack locally (load balancer, API, two gateways; ports in services/shared/defaults.py)
	$(PY) -m stack

migrate: install ## Create the database if missing and apply the SQL migrations
	$(PY) -m stack createdb
	$(PY) -m services.api_service migrate

test: lint ## Lint, then run all tests (unit, integration, delivery, browser, then the compose stack)
	WITH_BROWSER=1 ./scripts/bootstrap.sh
	$(PY) -m pytest $(PYTEST_ARGS)
	PY=$(PY) COMPOSE="$(COMPOSE)" ./scripts/compose_test.sh

.PHONY: compose-test
compose-test: install ## Build, start (3 gateways) and test the docker-compose stack; down -v after
	PY=$(PY) COMPOSE="$(COMPOSE)" ./scripts/compose_test.sh

test-unit: venv ## Run the unit tests only (needs no PostgreSQL, Redis or system packages)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## Run the integration tests only
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-security
test-security: install ## Attack and failure tests alone, one line per attack with its figure
	$(PY) -m pytest -m security $(PYTEST_ARGS)

.PHONY: test-faults
test-faults: install ## Fault-injection suite only (private Redis/PostgreSQL restarted, processes killed)
	$(PY) -m pytest tests/delivery/test_faults.py -m faults -s $(PYTEST_ARGS)

BENCH_ARGS ?= --target all --clients 1000 --replicas 2 --rate 50 --duration 20
BENCH_ROOMS_ARGS ?= --rooms 1000 --target all --clients 10000 --allow-10k --replicas 2 --rate 1 --duration 30
BENCH_STATE_ARGS ?= --rooms 1000 --target ours --clients 10000 --allow-10k --replicas 2 --rate 1 --duration 30 --room-state
# `make bench` runs the global-room load, then the rooms load, then the rooms load without
# and with live room state (BENCH_ROOMS_ARGS= or BENCH_STATE_ARGS= skips one).
bench: bench-deps ## Fan-out benchmarks: global room (ours vs stock vs Node), rooms (ours vs Node), room state (ours)
	$(PY) -m bench $(BENCH_ARGS)
	$(if $(strip $(BENCH_ROOMS_ARGS)),$(PY) -m bench $(BENCH_ROOMS_ARGS))
	$(if $(strip $(BENCH_STATE_ARGS)),$(PY) -m bench $(BENCH_STATE_ARGS))

bench-rooms: bench-deps ## Rooms load only: 10,000 clients in 1,000 rooms of 10, ours vs Node
	$(PY) -m bench $(BENCH_ROOMS_ARGS)

bench-room-state: bench-deps ## Rooms load without, then with presence churn, typing and read markers
	$(PY) -m bench $(BENCH_STATE_ARGS)

bench-connects: bench-deps ## Gateway CPU per client connect + disconnect, ours vs Node (what presence churn costs)
	$(PY) -m bench connects

bench-deps: install
	$(VENV)/bin/pip install --quiet -e '.[test,bench]'

bench-rest: install ## REST throughput/latency next to pgbench's single-row insert
	$(PY) -m bench rest

bench-profile: install ## py-spy profile of one gateway under load
	$(VENV)/bin/pip install --quiet -e '.[test,bench]'
	$(PY) -m bench profile --clients 1000 --rate 50 --profile-seconds 20

.PHONY: check-upstream
check-upstream: ## Gateway tests and library touchpoints against the newest aiohttp/engineio/socketio/redis (throw-away venv; not part of test)
	$(PY) scripts/check_upstream.py

compose-config: ## Validate docker-compose.yml
	$(COMPOSE) -f docker-compose.yml config -q

lint: venv ## ruff check, ruff format --check and mypy --strict (services/, stack/); fails on any finding
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean: ## Remove caches, logs and build artefacts (keeps .venv)
	rm -rf .run .pytest_cache .ruff_cache build dist test-artifacts *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
