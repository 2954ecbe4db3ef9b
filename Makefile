# The two commands of the README:  `make demo`  and  `make test`.
# Both work on a fresh machine: they create .venv, install the project, fetch
# Kafka (Maven Central) and redis-server (apt) on first use, and start the stack.
# `make test` also installs Debian's chromium (apt) for the dashboard's browser test.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM_LOG := .cdp/apt-chromium.log
CHROMIUM_BIN ?= chromium

.PHONY: install demo test lint unit integration browser stack-up stack-down clean

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

integration: install stack-up browser
	$(BIN)/pytest -m integration

test: lint stack-up browser
	$(BIN)/pytest

# Debian's chromium for tests/integration/test_dashboard_browser.py (Playwright drives it;
# `playwright install` would download a browser build, which this setup never does).
# Idempotent: nothing happens when chromium is on PATH. apt's output goes to a log file.
browser:
	@command -v $(CHROMIUM_BIN) >/dev/null 2>&1 || { \
	  set -e; mkdir -p $(dir $(CHROMIUM_LOG)); : > $(CHROMIUM_LOG); \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "==> installing Debian's chromium for the browser test (log: $(CHROMIUM_LOG))"; \
	  echo "    apt-get update"; \
	  $$SUDO apt-get update >>$(CHROMIUM_LOG) 2>&1 || { tail -20 $(CHROMIUM_LOG); exit 1; }; \
	  echo "    apt-get install chromium (downloads about 100 MB on a fresh machine)"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    chromium >>$(CHROMIUM_LOG) 2>&1 || { tail -20 $(CHROMIUM_LOG); exit 1; }; \
	  echo "    $$(chromium --version 2>/dev/null || echo chromium) installed"; \
	}

stack-up: install
	$(BIN)/cdp stack up

stack-down: install
	$(BIN)/cdp stack down

clean:
	-$(BIN)/cdp stack down
	rm -rf $(VENV) .cdp .pytest_cache .mypy_cache .ruff_cache
