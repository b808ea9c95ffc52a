#!/usr/bin/env bash
# Run once by the postgres image (/docker-entrypoint-initdb.d), when its data volume is empty.
# One PostgreSQL server, three databases, each owned by its own login role:
#   airflow    Airflow's metadata                       (role airflow)
#   warehouse  the keyaccounts warehouse: raw .. marts  (role keyaccounts, the pipeline)
#   superset   Superset's own metadata                  (role superset)
# The read-only BI role is not made here: `keyaccounts grant-bi` (service airflow-init) creates
# it and grants it `marts` only; keyaccounts has CREATEROLE for that. No database is open to
# PUBLIC: grant-bi grants CONNECT on `warehouse` to the BI role itself.
# Passwords come from the environment (.env), bound as psql variables, never pasted into SQL.
# Changing a password in .env later does not re-run this script: use ALTER ROLE (README).
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?}" "${KEYACCOUNTS_PG_PASSWORD:?}" "${SUPERSET_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v airflow_pw="${AIRFLOW_DB_PASSWORD}" \
    -v keyaccounts_pw="${KEYACCOUNTS_PG_PASSWORD}" \
    -v superset_pw="${SUPERSET_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE keyaccounts LOGIN CREATEROLE PASSWORD :'keyaccounts_pw';
CREATE DATABASE warehouse OWNER keyaccounts;
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;

CREATE ROLE superset LOGIN PASSWORD :'superset_pw';
CREATE DATABASE superset OWNER superset;
REVOKE ALL ON DATABASE superset FROM PUBLIC;
SQL

# the warehouse's public schema belongs to the pipeline (nobody else creates there)
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname warehouse <<'SQL'
ALTER SCHEMA public OWNER TO keyaccounts;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
