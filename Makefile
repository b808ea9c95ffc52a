# Newcomer commands: `make demo` and `make test`. Both call `make setup`.
SHELL := /bin/bash
UV_VERSION ?= 0.13.9
VENV := .venv
STATE := .state
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(STATE)/uv/bin/uv)

.PHONY: setup test demo lint clean

# Installs uv if missing, then the locked environment into ./.venv.
# The stamp makes a second `make setup` a no-op unless the lock or pyproject changed.
setup: $(VENV)/.synced

$(UV):
	@mkdir -p $(STATE)/uv
	python3 -m pip install --quiet --disable-pip-version-check --target $(STATE)/uv/lib "uv==$(UV_VERSION)"
	@mkdir -p $(STATE)/uv/bin && printf '#!/bin/sh\nPYTHONPATH=%s exec python3 -m uv "$$@"\n' "$(CURDIR)/$(STATE)/uv/lib" > $(STATE)/uv/bin/uv && chmod +x $(STATE)/uv/bin/uv

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python 3.11
	@touch $@

test: setup
	$(VENV)/bin/pytest -q

demo: setup
	$(VENV)/bin/keyaccounts demo

lint: setup
	$(VENV)/bin/sqlfluff lint dbt_project/models

clean:
	rm -rf $(STATE)
