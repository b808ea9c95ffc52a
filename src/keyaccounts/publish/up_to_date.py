"""Whether `keyaccounts run` has anything to do: a daily run that finds no new file should cost
what its ingest costs, not a rebuild of every model (operations.md: daily runs cost in
proportion to the new data).

A completed run records a fingerprint of everything its marts and files were built from, in
`audit.run_state` (one row). The next run, after its ingest, skips the build, the checks and the
publish when the fingerprint is the same and the files of that publish are all in place. The
fingerprint covers:
- what was loaded: the rows of `audit.manifest` (every file or pull taken, whole or quarantined;
  raw is append-only, so a new delivery always adds a row);
- the settings: the dbt vars the build gets (the month built through included), the month
  published and the exports folder;
- the code: every file of the dbt project, the Great Expectations suites and this package.

Any other publish (an Airflow DAG run) clears the row inside its publish transaction, so only a
run that completed end to end through `run_pipeline` can be the reference. `--full-refresh` and
`--restate` never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from keyaccounts.config import DBT_PROJECT_DIR, PROJECT_ROOT

STATE_TABLE = "audit.run_state"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# what the build does not read: dbt's own output and caches
_SKIPPED_DIRS = {"target", "logs", "dbt_packages", "__pycache__", ".pytest_cache"}


@dataclass
class LastRun:
    run_id: str
    eval_month: str
    version: int
    exports: list[Path]


def _code_files() -> list[Path]:
    roots = [DBT_PROJECT_DIR, PROJECT_ROOT / "expectations", PACKAGE_DIR]
    files = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith("."))
            # hidden files are dbt's own (.user.yml, written on its first run)
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and not f.endswith(".pyc")]
    return files


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in _code_files():
        digest.update(str(path).encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(conn, dbt_vars: dict, month: str, exports_dir: Path | None) -> str:
    """Everything the build, the checks and the publish of `month` read, as one hash."""
    loaded = conn.execute(
        "select count(*), coalesce(max(file_seq), 0), coalesce(sum(rows_loaded), 0), "
        "coalesce(sum(rows_quarantined), 0) from audit.manifest").fetchone()
    parts = {
        "loaded": [int(v) for v in loaded],
        "dbt_vars": dbt_vars,
        "month": month,
        "exports": str(Path(exports_dir).resolve()) if exports_dir else None,
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def ensure_state(conn) -> None:
    conn.execute("create schema if not exists audit")
    conn.execute(f"create table if not exists {STATE_TABLE} (eval_month varchar, run_id varchar, "
                 "fingerprint varchar, completed_at timestamptz)")


def clear(conn) -> None:
    """A publish is under way: no earlier run describes the marts any more."""
    ensure_state(conn)
    conn.execute(f"delete from {STATE_TABLE}")


def record(conn, month: str, run_id: str, fp: str) -> None:
    """The run completed (published and its files renamed into place)."""
    ensure_state(conn)
    conn.execute("begin transaction")
    try:
        conn.execute(f"delete from {STATE_TABLE}")
        conn.execute(f"insert into {STATE_TABLE} values (?, ?, ?, ?)", [month, run_id, fp, datetime.now(timezone.utc)])
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def unchanged_since(conn, fp: str, month: str, bi_copy: Path | None) -> LastRun | None:
    """The last completed run, if it published `month` from the same fingerprint and its files
    (exports, report, BI copy) are all still there; else None."""
    ensure_state(conn)
    row = conn.execute(f"select run_id from {STATE_TABLE} where eval_month = ? and fingerprint = ?",
                       [month, fp]).fetchone()
    if row is None:
        return None
    log = conn.execute("select exports, version from audit.publish_log where run_id = ? and eval_month = ?",
                       [row[0], month]).fetchone()
    if log is None:
        return None
    exports = [Path(p) for p in (log[0] or "").split(";") if p]
    if not exports or not all(p.exists() for p in exports):
        return None
    if bi_copy is not None and not ((bi_copy / "marts.duckdb").is_file() and (bi_copy / "parquet").is_dir()):
        return None
    return LastRun(row[0], month, int(log[1] or 1), exports)
