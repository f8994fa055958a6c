# Portrait: `make setup` once, then `make demo` (the whole pipeline) or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The production-profile servers the integration tests use (CI has them too).
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup lint test test-unit demo demo-zh bench db-up db-down mlflow-ui serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# ruff (lint + format), mypy, and the import contracts between stages (pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup
	PORTRAIT_TEST_DATABASE_URL=$(TEST_DATABASE_URL) PORTRAIT_TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest tests

test-unit: setup
	$(BIN)/pytest tests/unit

demo: setup
	$(BIN)/python -m portrait.cli.demo $(ARGS)

# The Chinese shop (its own state in .portrait-zh): synthetic export of real reviews, multilingual-e5-small
demo-zh: setup
	$(BIN)/python -m portrait.cli.demo --lang zh $(ARGS)

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/ranking.py
	$(BIN)/python bench/serving.py

db-up: setup
	$(BIN)/portrait db up

db-down: setup
	$(BIN)/portrait db down

clean:
	-$(BIN)/portrait db down
	-PORTRAIT_STATE_DIR=$(CURDIR)/.portrait-zh $(BIN)/portrait db down
	rm -rf .portrait .portrait-zh

serve: setup
	$(BIN)/portrait serve

mlflow-ui: setup
	$(BIN)/mlflow server --backend-store-uri "$$($(BIN)/portrait db url --database mlflow)" \
		--default-artifact-root "$${PORTRAIT_STATE_DIR:-$(CURDIR)/.portrait}/mlartifacts" --host 127.0.0.1 --port 5000
