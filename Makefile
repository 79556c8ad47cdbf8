# Two commands on a fresh machine with Python >= 3.11 and make:
#   make run    the whole service (Temporal dev server + UI, worker, API) on SQLite under .data/
#   make test   the whole test suite (PostgreSQL when TICKETFLOW_TEST_DATABASE_URL is set)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export TICKETFLOW_DATABASE_URL ?= sqlite:///.data/ticketflow.db

.PHONY: run test install migrate demo bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	@mkdir -p .data
	$(VENV)/bin/alembic upgrade heads

demo: migrate
	$(PY) -m api.demo

run: demo
	@echo ""
	@echo "  Ticketflow is starting (Ctrl-C stops everything):"
	@echo "    API docs     http://localhost:$${TICKETFLOW_API_PORT:-8000}/docs"
	@echo "    Dashboard    http://localhost:$${TICKETFLOW_API_PORT:-8000}/dashboard  (key: demo-sup-zhou)"
	@echo "    Temporal UI  http://localhost:$${TICKETFLOW_TEMPORAL_UI_PORT:-8233}/namespaces/default/workflows"
	@echo "    Try it       curl -H 'X-API-Key: demo-agent-wang' http://localhost:$${TICKETFLOW_API_PORT:-8000}/tickets"
	@echo ""
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/lifecycle.py

clean:
	rm -rf .data
