# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint typecheck pytest migrate bench fuzz load clean help

help:
	@echo "make run    - install, start PostgreSQL if needed, migrate, start the gateway and every service"
	@echo "make test   - install, lint, type-check and run the whole suite against a real PostgreSQL"
	@echo "make demo   - load a realistic dataset into the platform make run serves (FISIQ_ADMIN_KEY=fsk_...)"
	@echo "make bench  - measure the gateway and write docs/benchmarks.md"
	@echo "make fuzz   - schemathesis against the gateway's OpenAPI on a scratch platform (pass/fail)"
	@echo "make load   - the whole platform under load with faults, then a reconciliation (pass/fail; LOAD_SECONDS)"
	@echo "make migrate - migrate every schema (DATABASE_URL)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/python -m deploy.run

# DEMO_ARGS="--scale 0.1 --seed 7 --gateway http://127.0.0.1:8000" to change what is loaded, and where
demo: $(STAMP)
	$(BIN)/python -m deploy.demo $(DEMO_ARGS)

migrate: $(STAMP)
	$(BIN)/python -m deploy.migrate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy services shared deploy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run

load: $(STAMP)
	$(BIN)/python -m tests.load.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
