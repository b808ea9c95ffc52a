#!/usr/bin/env bash
# The one-shot `airflow-init` service of docker-compose.yml (runs at every `docker compose up`,
# each step is idempotent):
#   1. the inbox / exports / logs folders writable by the airflow user (bind mounts arrive root-owned);
#   2. the Airflow metadata database (`airflow db migrate`);
#   3. the pool every warehouse-writing task runs in (as `keyaccounts demo` creates it);
#   4. the Airflow admin's password for the simple auth manager, from .env;
#   5. the read-only BI role of the PostgreSQL warehouse (`keyaccounts grant-bi`), which the
#      BI tool connects as.
# Secrets arrive as environment variables (from .env) and are never echoed.
set -euo pipefail

: "${AIRFLOW_UID:=50000}"
: "${KEYACCOUNTS_INBOX:?}" "${KEYACCOUNTS_EXPORTS:?}" "${KEYACCOUNTS_WAREHOUSE:?}"
: "${AIRFLOW_ADMIN_USER:?}" "${AIRFLOW_ADMIN_PASSWORD:?}" "${KEYACCOUNTS_BI_PASSWORD:?}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"

echo "airflow-init: folders"
mkdir -p "${KEYACCOUNTS_INBOX}" "${KEYACCOUNTS_EXPORTS}" "${AIRFLOW_HOME}/logs" \
    "$(dirname "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}")"

echo "airflow-init: metadata database"
airflow db migrate

echo "airflow-init: pool"
# the DAGs put every task that writes the warehouse in this pool (orchestration.DUCKDB_POOL);
# one slot as on DuckDB. On this PostgreSQL warehouse it may be raised (docs/scaling.md);
# note that every `up` sets it back to this value.
airflow pools set keyaccounts_duckdb 1 "keyaccounts: tasks that write the warehouse (one writer)"

echo "airflow-init: admin password (simple auth manager)"
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.write_text(json.dumps({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}) + "\n")
path.chmod(0o600)
PY

echo "airflow-init: read-only BI role"
keyaccounts grant-bi --warehouse "${KEYACCOUNTS_WAREHOUSE}" --role "${KEYACCOUNTS_BI_ROLE:-keyaccounts_bi}"

# the long-running services run as AIRFLOW_UID (group 0): hand them what this root step created
chown "${AIRFLOW_UID}:0" "${KEYACCOUNTS_INBOX}" "${KEYACCOUNTS_EXPORTS}"
chown -R "${AIRFLOW_UID}:0" "${AIRFLOW_HOME}/logs" "$(dirname "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}")"
chmod g+rwx "${KEYACCOUNTS_INBOX}" "${KEYACCOUNTS_EXPORTS}"
echo "airflow-init: done"
