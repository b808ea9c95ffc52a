"""Running the dbt project in-process (dbtRunner), the same way for the CLI and the DAGs."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Iterator

from keyaccounts.config import DBT_PROJECT_DIR, PG_TLS_ENV
from keyaccounts.errors import DUCKDB_FILE_LOCK, BuildFailed, BuildReplaced, WarehouseLocked
from keyaccounts.warehouse import (connection, duckdb_settings, is_postgres, mask_password,
                                   pg_params, release_dbt_handle)


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def warehouse_env(warehouse: Path | str) -> dict[str, str]:
    """What profiles.yml reads to reach the warehouse: the DuckDB file, or (target `postgres`)
    the PostgreSQL URL's parts; the password stays in the environment it came from."""
    if not is_postgres(warehouse):
        settings = {f"KEYACCOUNTS_DUCKDB_{k.upper()}": v for k, v in duckdb_settings(warehouse).items()}
        return {"KEYACCOUNTS_DBT_TARGET": "duckdb", "KEYACCOUNTS_WAREHOUSE": str(Path(warehouse).resolve()), **settings}
    pg = pg_params(str(warehouse))
    return {"KEYACCOUNTS_DBT_TARGET": "postgres", "KEYACCOUNTS_PG_HOST": pg["host"], "KEYACCOUNTS_PG_PORT": pg["port"],
            "KEYACCOUNTS_PG_USER": pg["user"], "KEYACCOUNTS_PG_DATABASE": pg["dbname"],
            "KEYACCOUNTS_PG_PASSWORD": pg["password"],
            # the URL's TLS options; empty: libpq's defaults
            **{name: pg.get(option, "") for option, name in PG_TLS_ENV.items()}}


# one model at a time once a raw feed holds more rows than this (docs/benchmarks.md, session 9): DuckDB's
# memory_limit is shared by the models dbt builds side by side, and at 20 million orders two large
# receivables models together ran out of memory at 5GB, or took 9 to 11 GB RSS at 8GB; at 2 million
# orders one model at a time costs 4% of the dbt build, and below that dbt's fixed cost per model
# dominates, which two threads overlap
LARGE_FEED_ROWS = 1_000_000


def models_at_once(warehouse: Path | str) -> int | None:
    """How many models dbt builds side by side (dbt's `threads`): 1 on a DuckDB warehouse whose
    largest raw feed holds more than LARGE_FEED_ROWS rows; None leaves it to KEYACCOUNTS_THREADS
    when set, else to profiles.yml's default (2), and always on PostgreSQL."""
    if os.environ.get("KEYACCOUNTS_THREADS") or is_postgres(warehouse):
        return None
    with connection(warehouse) as conn:
        # the row counts DuckDB keeps in its catalog: no scan
        largest = conn.execute("select max(estimated_size) from duckdb_tables() where schema_name = 'raw'").fetchone()[0]
    return 1 if (largest or 0) > LARGE_FEED_ROWS else None


def dbt_env(warehouse: Path | str, state_dir: Path, target_path: Path | None = None,
            threads: int | None = None) -> dict[str, str]:
    return {
        **warehouse_env(warehouse),
        **({"KEYACCOUNTS_THREADS": str(threads)} if threads else {}),
        "DBT_TARGET_PATH": str((target_path or state_dir / "target").resolve()),
        "DBT_LOG_PATH": str((state_dir / "logs").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


DEMO_PII_SALT = "keyaccounts-demo-salt"  # public (README): production sets KEYACCOUNTS_PII_SALT


def store_pii_salt(conn) -> None:
    """Put the salt of the respondents' hash (KEYACCOUNTS_PII_SALT) where staging reads it (macro
    pii_hash): a table of `audit`, beside the raw personal data it protects and out of the BI role's
    reach. Rendered into the SQL, it was written in clear to dbt's target folder and log. Called before
    every build: by transform_task (CLI) and by the DAGs' claim_build task (Cosmos runs dbt itself)."""
    salt = os.environ.get("KEYACCOUNTS_PII_SALT") or DEMO_PII_SALT
    conn.execute("create schema if not exists audit")
    conn.execute("create table if not exists audit.pii_salt (salt varchar not null)")
    if conn.execute("select salt from audit.pii_salt").fetchall() != [(salt,)]:
        conn.execute("begin transaction")
        conn.execute("delete from audit.pii_salt")
        conn.execute("insert into audit.pii_salt values (?)", [salt])
        conn.execute("commit")


def run_dbt(command: str, warehouse: Path | str, state_dir: Path, dbt_vars: dict, extra: list[str] | None = None,
            target_path: Path | None = None, threads: int | None = None, owner: str | None = None) -> None:
    """Run `dbt <command>` against the warehouse; raise BuildFailed with the first failing node. With
    `owner`, as the build that run claimed (transform.build_claim)."""
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    state_dir.mkdir(parents=True, exist_ok=True)
    args = [
        command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--vars", json.dumps(dbt_vars),
        "--quiet",
        "--no-use-colors",
    ] + (extra or [])
    import logging

    raise_exceptions = logging.raiseExceptions
    # a full disk makes dbt's file log fail on every line; don't print a traceback for each
    logging.raiseExceptions = False
    shown = io.StringIO()  # dbt's console output (--quiet: errors only), shown unless it is a disk fault
    with _env({**dbt_env(warehouse, state_dir, target_path, threads), "KEYACCOUNTS_BUILD_OWNER": owner or ""}):
        # dbt writes sys.argv (our command line) into dbt.log and run_results.json as its
        # invocation_command: a password given in a --warehouse or --sql-source URL must not reach them
        argv = sys.argv
        sys.argv = [mask_password(a) for a in argv]
        try:
            with redirect_stdout(shown):
                result = dbtRunner().invoke(args)
        finally:
            sys.argv = argv
            logging.raiseExceptions = raise_exceptions
            release_dbt_handle()
    if result.success:
        return
    if isinstance(result.exception, OSError):
        # dbt's own files (target, log) on a full or read-only disk: a resource fault (exit 3, one
        # line), not a failed model, and dbt's traceback of it is not for the user
        raise result.exception
    log = state_dir / "logs" / "dbt.log"
    messages = [str(result.exception)] if result.exception is not None else [
        r.message or "" for r in getattr(result.result, "results", []) or [] if str(r.status) in ("error", "fail")]
    for code in (errno.ENOSPC, errno.EROFS):
        if any(os.strerror(code) in m for m in messages):  # DuckDB could not write a model: the same fault
            raise OSError(code, os.strerror(code))
    sys.stdout.write(shown.getvalue())
    if any(DUCKDB_FILE_LOCK in m for m in messages):
        # another process (a BI tool reading the warehouse file itself) opened it while dbt had it
        # closed: not a failed model, and gone on a retry
        raise WarehouseLocked(f"warehouse {warehouse} was opened by another process during the dbt build (DuckDB "
                              "allows one writer; BI tools read published/): nothing was published; retry when "
                              "it is closed", details=str(log))
    replaced = [line.strip() for m in messages for line in m.splitlines() if "rebuilt by another run" in line]
    if replaced:  # macros/build_claim.sql: another run claimed marts_build since this one did
        raise BuildReplaced(replaced[0], details=str(log))
    if result.exception is not None:
        first = str(result.exception).strip().splitlines()
        raise BuildFailed(f"dbt {command} failed: {first[0] if first else type(result.exception).__name__}",
                          details=str(log))
    failed = []
    for r in getattr(result.result, "results", []) or []:
        if str(r.status) in ("error", "fail"):
            msg = (r.message or "").strip().splitlines()
            failed.append(f"{r.node.name}: {msg[0] if msg else r.status}")
    summary = failed[0] if failed else "see the dbt log"
    more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
    raise BuildFailed(f"dbt {command} failed at {summary}{more}", details=str(log))
