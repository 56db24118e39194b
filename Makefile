# lakegate: two commands on a fresh machine — `make up` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: up status test lint typecheck bootstrap clean

bootstrap: ## install uv (if missing) and the whole workspace
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages uv
	@$(UV) sync --frozen --quiet 2>/dev/null || $(UV) sync --quiet

up: bootstrap ## start NATS, PostgreSQL, the four services and the MCP edge; Ctrl-C stops all
	@$(UV) run --no-sync python -m lakegate.devstack up

status: ## is a stack running from .lakegate/ (or $$LAKEGATE_HOME), and is each process ready?
	@$(UV) run --no-sync python -m lakegate.devstack status

test: bootstrap ## every test: unit, contract, end-to-end
	@$(UV) run --no-sync pytest

lint: bootstrap
	@$(UV) run --no-sync ruff check . && $(UV) run --no-sync ruff format --check .

typecheck: bootstrap
	@$(UV) run --no-sync mypy libs/*/src services/*/src

clean:
	rm -rf .venv .lakegate
