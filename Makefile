# Newcomer commands: `make demo` and `make test`. Both call `make setup`.
SHELL := /bin/bash
UV_VERSION ?= 0.13.9
VENV := .venv
STATE := .state
PY := $(VENV)/bin/python
# uv from PATH, else a private copy installed with pip into the state folder.
UV := $(shell command -v uv 2>/dev/null || echo $(STATE)/uv/bin/uv)

MANIFEST := $(STATE)/dbt/manifest/manifest.json
DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.py' -o -name '*.csv' 2>/dev/null | grep -v '/target/')

.PHONY: setup test demo airflow lint clean

# Installs uv if missing, then the locked environment into ./.venv.
# The stamp makes a second `make setup` a no-op unless the lock or pyproject changed.
setup: $(VENV)/.synced $(MANIFEST)

$(STATE)/uv/bin/uv:
	python3 -m pip install --quiet --disable-pip-version-check --target $(STATE)/uv "uv==$(UV_VERSION)"

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on our CI hosts),
# Python would otherwise compile dbt, Great Expectations and Airflow from source in every process
# (about 10 s each; a run of the worked example took 39 s instead of 21).
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	@touch $@

# Cosmos renders the DAGs from this manifest (no dbt parse when a DAG file is parsed).
$(MANIFEST): $(VENV)/.synced $(DBT_SOURCES)
	$(PY) -m keyaccounts.transform.manifest

test: setup
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

demo: setup
	$(VENV)/bin/keyaccounts demo

# A local Airflow (standalone: UI on http://localhost:8080) with the project's DAGs.
airflow: setup
	$(PY) -m keyaccounts.airflow_local standalone

lint: setup
	KEYACCOUNTS_WAREHOUSE=$(STATE)/lint.duckdb DBT_TARGET_PATH=$(STATE)/dbt/lint $(VENV)/bin/sqlfluff lint dbt_project/models

clean:
	rm -rf $(STATE)
