# The two commands of the README:  `make demo`  and  `make test`.
# Both work on a fresh machine: they create .venv, install the project, fetch
# Kafka (Maven Central) and redis-server (apt) on first use, and start the stack.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint unit integration stack-up stack-down clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing cdp with dev tools"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --progress-bar off -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/cdp demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cdp schemas check

unit: install
	$(BIN)/pytest -m "not integration"

integration: install stack-up
	$(BIN)/pytest -m integration

test: lint stack-up
	$(BIN)/pytest

stack-up: install
	$(BIN)/cdp stack up

stack-down: install
	$(BIN)/cdp stack down

clean:
	-$(BIN)/cdp stack down
	rm -rf $(VENV) .cdp .pytest_cache .mypy_cache .ruff_cache
