# Two commands for a new user (see README): `make run` and `make test`.
# Both bootstrap .venv from python3 alone: a venv, pip installs the pinned uv into it, and uv
# installs the locked dependencies (uv.lock) in seconds. Nothing else has to be pre-installed.
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: run test test-all lint unit integration e2e bench browser browser-deps clean help

help:
	@echo "make run    - compare the default models on the embedded MNIST"
	@echo "make test   - the whole test suite with the layer contracts, ruff and mypy"

$(VENV)/bin/uv:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(VENV)/bin/uv pyproject.toml uv.lock
	$(VENV)/bin/uv sync --frozen --python $(VENV)/bin/python
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ssvae compare --models standard mixture_k10 --epochs 10

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	bash .ci/mypy

# The dashboard's browser tests drive Debian's chromium through Playwright (`playwright install`
# cannot download its own browsers here). Installed with apt-get when missing; needs root.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "error: the browser tests need Debian's chromium at $(CHROMIUM) and this is not root;"; \
		echo "       run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/chromium)"; \
		exit 1; \
	fi

browser-deps: browser

# pytest exits 5 when it collects no test: that fails here, loudly.
test: lint browser
	@$(VENV)/bin/python -m pytest -m "not slow" -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; fi; exit $$rc

unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit -q

integration: $(STAMP)
	$(VENV)/bin/python -m pytest tests/integration -q

e2e: $(STAMP) browser
	$(VENV)/bin/python -m pytest tests/e2e -q

bench: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
