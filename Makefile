# lakegate: two commands on a fresh machine — `make up` and `make test`.
SHELL := /bin/bash
# uv lands in ~/.local/bin (pip --user) or on the system path; recipes look in both.
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: up status test lint typecheck bootstrap clean bench

# Bytecode is compiled once here: with PYTHONDONTWRITEBYTECODE set (as on this machine), every service process
# of every test stack would otherwise compile pyarrow, duckdb, pydantic & co. from source each time it starts.
bootstrap: ## install uv (if missing) and the whole workspace, exactly as uv.lock pins it
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv 2>/dev/null \
		|| python3 -m pip install --quiet --break-system-packages uv
	@uv sync --frozen --quiet --compile-bytecode
	@uv run --no-sync python -m compileall -q libs/*/src services/*/src >/dev/null

up: bootstrap ## start NATS, PostgreSQL, the four services and the MCP edge; Ctrl-C stops all
	@uv run --no-sync python -m lakegate.devstack up

status: ## is a stack running from .lakegate/ (or $$LAKEGATE_HOME), and is each process ready?
	@uv run --no-sync python -m lakegate.devstack status

# Tests mostly wait on subprocesses (NATS, PostgreSQL, whole stacks), so workers overlap that waiting; each
# worker starts its own harness on free ports. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: bootstrap ## every test: unit, contract, end-to-end (in parallel; the 20 slowest are listed at the end)
	@uv run --no-sync pytest -n $(TEST_WORKERS) --durations=20

lint: bootstrap
	@uv run --no-sync ruff check . && uv run --no-sync ruff format --check .

typecheck: bootstrap
	@uv run --no-sync mypy libs/*/src services/*/src

bench: bootstrap ## measure extraction and syncs against PostgreSQL's COPY (not a test); BENCH_ARGS=--quick for a smoke run
	@uv run --no-sync python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .venv .lakegate
