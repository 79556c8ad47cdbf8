# Two commands on a fresh machine with Python >= 3.11 and make:
#   make run    the whole service (Temporal dev server + UI, worker, API) on SQLite under .data/
#   make test   the whole test suite (PostgreSQL when TICKETFLOW_TEST_DATABASE_URL is set)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

export TICKETFLOW_DATABASE_URL ?= sqlite:///.data/ticketflow.db

.PHONY: run test lint install install-test migrate demo bench clean

# The service itself (make run); the test tools (pytest, Playwright, Hypothesis, ruff, mypy…) only for make test.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -e clients/python  # the service and its typed client (the CLI uses it)
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

migrate: install
	@mkdir -p .data
	$(VENV)/bin/alembic upgrade heads

demo: migrate
	$(PY) -m api.demo

# Ctrl-C reaches make, the recipe's shell and honcho. honcho stops the three processes (SIGTERM;
# the worker lets in-flight activities finish) and exits 130; the trap runs once honcho has
# returned and ends the shell with 0, so make adds no "make: *** [run] Interrupt" (make itself
# still ends by SIGINT, as an interrupted command does). Any other failure keeps honcho's status.
# A handler, not `trap '' INT`: an ignored SIGINT would be inherited by honcho's children.
run: demo
	@echo ""
	@echo "  Ticketflow is starting (Ctrl-C stops everything):"
	@echo "    API docs     http://localhost:$${TICKETFLOW_API_PORT:-8000}/docs"
	@echo "    Dashboard    http://localhost:$${TICKETFLOW_API_PORT:-8000}/dashboard  (key: demo-sup-zhou)"
	@echo "    Console      http://localhost:$${TICKETFLOW_API_PORT:-8000}/console  (key: demo-agent-wang, demo-eng-li, demo-mgr-sun, demo-fin-qian)"
	@echo "    Temporal UI  http://localhost:$${TICKETFLOW_TEMPORAL_UI_PORT:-8233}/namespaces/default/workflows"
	@echo "    Try it       curl -H 'X-API-Key: demo-agent-wang' http://localhost:$${TICKETFLOW_API_PORT:-8000}/tickets"
	@echo ""
	trap 'exit 0' INT; PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile

# -n auto: one pytest worker per core (pytest-xdist); each has its own database schema and dev server.
test: install-test
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install-test
	$(PY) bench/lifecycle.py
	$(PY) bench/export.py

clean:
	rm -rf .data
