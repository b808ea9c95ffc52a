"""The read-only BI role of a PostgreSQL warehouse (outputs.md, operations.md Security).

`keyaccounts grant-bi --warehouse postgresql://OWNER@HOST:PORT/DB [--role NAME]` creates the
role (or updates its password) and leaves it able to do one thing: select from the `marts`
schema. It gets no privilege on `raw`, `staging`, `quarantine`, `audit` or `marts_build`
(PostgreSQL gives none by default; any granted earlier is revoked), and since PostgreSQL 15
no one may create in `public` unless granted. Default privileges make the tables that later
publishes create readable too, so the command is run once per warehouse (re-running it is
harmless). Run it as the role that runs the pipeline (the owner of the marts). It also takes from
PUBLIC, in this database, temp tables, large objects and advisory locks (PUBLIC_DEFAULTS below).
Connecting to the server's other databases is PUBLIC's default there: a DBA revokes it database by
database.
"""

from __future__ import annotations

import re

from keyaccounts.errors import InputError
from keyaccounts.warehouse import connection, is_postgres, quote_ident

READABLE = ("marts",)
PRIVATE = ("raw", "staging", "intermediate", "quarantine", "audit", "marts_build", "public")
ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_bi(warehouse: str, role: str, password: str | None) -> tuple[str, list[str]]:
    """Create or update the role; returns it and the statements left for a DBA (_close_public_defaults)."""
    if not is_postgres(warehouse):
        raise InputError("grant-bi needs a PostgreSQL warehouse (postgresql://USER@HOST:PORT/DB); a DuckDB "
                         "warehouse is read through its BI copy in published/ (see README)")
    if not ROLE_RE.match(role or ""):
        raise InputError(f"BI role name {role!r} must be lower-case letters, digits and _ (at most 63)")
    if not password:
        raise InputError("set the BI role's password in env KEYACCOUNTS_BI_PASSWORD (never on the command line)")
    ident = quote_ident(role)
    with connection(warehouse) as conn:
        database = conn.execute("select current_database()").fetchone()[0]
        conn.execute("begin transaction")
        try:
            exists = conn.execute("select count(*) from pg_roles where rolname = ?", [role]).fetchone()[0]
            # the password is bound as a value (psycopg2 quotes it), never pasted into the SQL
            conn.execute(f"{'alter' if exists else 'create'} role {ident} with login nosuperuser nocreatedb "
                         "nocreaterole noinherit password ?", [password])
            conn.execute(f"grant connect on database {quote_ident(database)} to {ident}")
            present = {r[0] for r in conn.execute("select nspname from pg_namespace").fetchall()}
            for schema in PRIVATE:
                if schema in present:
                    conn.execute(f"revoke all on all tables in schema {quote_ident(schema)} from {ident}")
                    conn.execute(f"revoke all on schema {quote_ident(schema)} from {ident}")
            for schema in READABLE:
                s = quote_ident(schema)
                conn.execute(f"create schema if not exists {s}")
                conn.execute(f"revoke create on schema {s} from {ident}")
                conn.execute(f"grant usage on schema {s} to {ident}")
                conn.execute(f"grant select on all tables in schema {s} to {ident}")
                # tables that later publishes create (as this owner) are readable too
                conn.execute(f"alter default privileges in schema {s} grant select on tables to {ident}")
            left = _close_public_defaults(conn, quote_ident(database))
            conn.execute("commit")
        except Exception as exc:
            conn.execute("rollback")
            if getattr(exc, "pgcode", None) == "42501":  # insufficient_privilege
                first = str(exc).strip().splitlines()[0]
                raise InputError(f"grant-bi: {first}: run it as the pipeline's role (the owner of the marts) "
                                 "with CREATEROLE, or as a superuser") from None
            raise
    return role, left


# What PostgreSQL grants every role (PUBLIC) by default that "select from marts and nothing else" rules
# out: temp tables in this database, large objects (which persist, so a BI login could store data and
# fill the disk), and advisory locks (a BI login holding the runs' lock, warehouse.PG_RUN_LOCK_KEY, would
# stop every run with exit 4). The pipeline keeps temp tables (dbt-postgres builds incremental models
# through them) and advisory locks: they are granted to the role running this and to the owners of the
# pipeline's schemas. The database's owner may revoke TEMP, only a superuser the functions: what the
# running role could not do is returned for a DBA. Each entry: (statements, SQL true while PUBLIC still
# holds the privilege), as a REVOKE without the right to revoke only warns.
_ADVISORY_LOCKS = ", ".join(f"pg_catalog.{f}(bigint)" for f in (
    "pg_advisory_lock", "pg_try_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock_shared",
    "pg_advisory_xact_lock", "pg_try_advisory_xact_lock", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock_shared"))
_LARGE_OBJECTS = "pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer)"
PUBLIC_DEFAULTS = [
    (["revoke temporary on database {db} from public", "grant temporary on database {db} to {pipeline}"],
     "has_database_privilege('public', current_database(), 'temp')"),
    ([f"revoke execute on function {_LARGE_OBJECTS} from public"],
     "has_function_privilege('public', 'pg_catalog.lo_from_bytea(oid, bytea)', 'execute')"),
    ([f"revoke execute on function {_ADVISORY_LOCKS} from public",
      f"grant execute on function {_ADVISORY_LOCKS} to {{pipeline}}"],
     "has_function_privilege('public', 'pg_catalog.pg_try_advisory_lock(bigint)', 'execute')"),
]
PIPELINE_SCHEMAS = ("raw", "staging", "audit", "marts_build")


def _close_public_defaults(conn, database: str) -> list[str]:
    owners = [r[0] for r in conn.execute(
        "select distinct nspowner::regrole::text from pg_namespace where nspname in "
        f"({', '.join('?' for _ in PIPELINE_SCHEMAS)})", list(PIPELINE_SCHEMAS)).fetchall()]
    pipeline = ", ".join(["current_user", *sorted(set(owners))])
    left = []
    for statements, still_held in PUBLIC_DEFAULTS:
        sqls = [sql.format(db=database, pipeline=pipeline) for sql in statements]
        for sql in sqls:
            conn.execute("savepoint public_default")
            try:
                conn.execute(sql)
                conn.execute("release savepoint public_default")
            except Exception:  # insufficient privilege
                conn.execute("rollback to savepoint public_default")
        if conn.execute(f"select {still_held}").fetchone()[0]:
            left.extend(sqls)
    return left

