# syntax=docker/dockerfile:1
# The Airflow image of docker-compose.yml: Airflow 3 and the keyaccounts package exactly as
# pinned in uv.lock (`uv sync --frozen`, the same environment as `make setup`), the project's
# DAGs, dbt project and Great Expectations suites, and the dbt manifest Cosmos renders the
# DAGs from (built here, so no container ever runs `dbt parse` while parsing a DAG).
#
#   docker compose build            (or: docker build -t keyaccounts-airflow .)
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# (an ARG before FROM is visible after it only when declared again)
ARG PYTHON_VERSION
# uv at the version the Makefile installs; the uid of the `airflow` user matches AIRFLOW_UID
ARG UV_VERSION=0.13.9
ARG AIRFLOW_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/keyaccounts/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    AIRFLOW_HOME=/opt/airflow \
    KEYACCOUNTS_STATE_DIR=/opt/keyaccounts/.state \
    KEYACCOUNTS_DBT_PROJECT_DIR=/opt/keyaccounts/dbt_project \
    KEYACCOUNTS_DBT_MANIFEST=/opt/keyaccounts/.state/dbt/manifest/manifest.json \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DO_NOT_TRACK=1 \
    SCARF_NO_ANALYTICS=true \
    PATH=/opt/keyaccounts/.venv/bin:$PATH

RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /data/inbox /data/exports /opt/airflow/logs /opt/airflow/auth \
    && chown -R "${AIRFLOW_UID}:0" /data /opt/airflow \
    && chmod -R g+rwX /data /opt/airflow

WORKDIR /opt/keyaccounts

# 1. third-party dependencies only (cached while uv.lock is unchanged)
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --python "python${PYTHON_VERSION}"

# 2. the project itself, installed editable so that its PROJECT_ROOT is /opt/keyaccounts
#    (dbt_project/, expectations/, dags/ and scripts/ are found beside src/)
COPY src/ src/
RUN uv sync --frozen --no-dev --python "python${PYTHON_VERSION}"

COPY dbt_project/ dbt_project/
COPY expectations/ expectations/
COPY dags/ dags/
COPY scripts/ scripts/
COPY docker/airflow/ docker/airflow/

# 3. the dbt manifest for Cosmos (LoadMode.DBT_MANIFEST) at $KEYACCOUNTS_DBT_MANIFEST
RUN python -m keyaccounts.transform.manifest \
    && test -s "${KEYACCOUNTS_DBT_MANIFEST}" \
    && rm -f .state/dbt/manifest/parse.duckdb \
    && chmod 0755 docker/airflow/*.sh \
    && chown -R "${AIRFLOW_UID}:0" .state \
    && chmod -R g+rwX .state

USER ${AIRFLOW_UID}:0
WORKDIR /opt/airflow
EXPOSE 8080
CMD ["airflow", "version"]
