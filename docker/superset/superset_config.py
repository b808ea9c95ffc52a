"""Superset settings for docker-compose.yml; every secret comes from the environment (.env).

Superset keeps its own metadata in the `superset` database of the stack's PostgreSQL; the
marts are a separate "database" inside Superset, registered by bootstrap.sh with the
read-only BI role (outputs.md "Serving BI").
"""

import os
from urllib.parse import quote

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = "postgresql+psycopg2://superset:{}@{}:{}/superset".format(
    quote(os.environ["SUPERSET_DB_PASSWORD"], safe=""),
    os.environ.get("SUPERSET_DB_HOST", "postgres"),
    os.environ.get("SUPERSET_DB_PORT", "5432"),
)
