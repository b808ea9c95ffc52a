#!/usr/bin/env bash
# The one-shot `superset-init` service of docker-compose.yml (idempotent, runs at every `up`):
# Superset's metadata schema, the admin user, the default roles and permissions, and the
# marts registered as the database "keyaccounts marts", reached as the read-only BI role
# that `keyaccounts grant-bi` created (airflow-init runs before this).
set -euo pipefail

: "${SUPERSET_ADMIN_USER:?}" "${SUPERSET_ADMIN_PASSWORD:?}" "${SUPERSET_ADMIN_EMAIL:?}"
: "${KEYACCOUNTS_BI_PASSWORD:?}"

superset db upgrade
# an existing admin is left as it is (change its password in the UI or with `superset fab reset-password`)
superset fab create-admin --username "${SUPERSET_ADMIN_USER}" --password "${SUPERSET_ADMIN_PASSWORD}" \
    --firstname Superset --lastname Admin --email "${SUPERSET_ADMIN_EMAIL}"
superset init

# the URI is built in Python so that any character of the password is URL-quoted; Superset
# stores it encrypted with SUPERSET_SECRET_KEY. Re-running updates the password.
BI_URI="$(python - <<'PY'
import os
from urllib.parse import quote

role = os.environ.get("KEYACCOUNTS_BI_ROLE") or "keyaccounts_bi"
print("postgresql+psycopg2://{}:{}@{}:{}/{}".format(
    role, quote(os.environ["KEYACCOUNTS_BI_PASSWORD"], safe=""), os.environ.get("KEYACCOUNTS_PG_HOST", "postgres"),
    os.environ.get("KEYACCOUNTS_PG_PORT", "5432"), os.environ.get("KEYACCOUNTS_PG_DATABASE", "warehouse")))
PY
)"
superset set-database-uri --database_name "keyaccounts marts" --uri "${BI_URI}"
echo "superset-init: database 'keyaccounts marts' reads schema marts as ${KEYACCOUNTS_BI_ROLE:-keyaccounts_bi}"
