"""Running the dbt project in-process (dbtRunner), the same way for the CLI and the DAGs."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from keyaccounts.config import DBT_PROJECT_DIR
from keyaccounts.errors import BuildFailed


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


def dbt_env(warehouse: Path, state_dir: Path) -> dict[str, str]:
    return {
        "KEYACCOUNTS_WAREHOUSE": str(Path(warehouse).resolve()),
        "DBT_TARGET_PATH": str((state_dir / "target").resolve()),
        "DBT_LOG_PATH": str((state_dir / "logs").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _release_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB instance open in the process after a run (a class-level
    cache), which holds the file lock and blocks a read-only open from the same process.
    The next pipeline step must be able to open the file, so we close it here."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not in use
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            try:
                env.close()
            except Exception:  # closing is best effort; a new run re-creates the environment
                pass


def run_dbt(command: str, warehouse: Path, state_dir: Path, dbt_vars: dict, extra: list[str] | None = None) -> None:
    """Run `dbt <command>` against the warehouse; raise BuildFailed with the first failing node."""
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
    with _env(dbt_env(warehouse, state_dir)):
        try:
            result = dbtRunner().invoke(args)
        finally:
            _release_duckdb()
    if result.success:
        return
    log = state_dir / "logs" / "dbt.log"
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
