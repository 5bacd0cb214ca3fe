# Two set-up commands: `make run` (the product on SQLite with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DATABASE_URL ?= sqlite+aiosqlite:///./var/partners.db
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in emails and the portal point at the server `make run` starts, on whatever HOST and PORT it was given.
export PARTNERS_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test lint typecheck pytest migrate demo worker clean bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@mkdir -p var
	$(BIN)/partners migrate
	$(BIN)/partners demo
	@echo ""
	@echo "  Namaskah Partners is starting on http://$(HOST):$(PORT)"
	@echo "  API docs: http://$(HOST):$(PORT)/docs"
	@echo ""
	$(BIN)/partners serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The browser tests (tests/web) drive Debian's Chromium; never `playwright install`.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium

pytest: $(VENV)/.installed-dev $(CHROMIUM)
	$(BIN)/pytest

# Benchmarks (not part of `make test`): needs wrk and pgbench (apt-get install -y wrk postgresql-client) and
# PostgreSQL at PARTNERS_BENCH_DATABASE_URL; about 10 minutes. Results in bench/results/, see bench/README.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
