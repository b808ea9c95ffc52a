"""Which months were published: the pipeline's own record in `audit.publish_log`.

The marts are rebuilt on every run; they never go back behind the latest published month
(rows of a month do not depend on later months, so re-running an older month changes
nothing but its export)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from keyaccounts.warehouse import connection, is_postgres


def ensure_publish_log(conn) -> None:
    conn.execute("create schema if not exists audit")
    conn.execute(
        "create table if not exists audit.publish_log (eval_month varchar, run_id varchar, "
        "published_at timestamptz, action varchar, version integer, restated_by varchar, reason varchar, "
        "exports varchar)"
    )
    # warehouses created by an earlier version lack the newer columns
    for column, kind in (("action", "varchar"), ("version", "integer"), ("restated_by", "varchar"),
                         ("reason", "varchar")):
        conn.execute(f"alter table audit.publish_log add column if not exists {column} {kind}")


def last_published_month(warehouse: Path | str) -> str | None:
    if not is_postgres(warehouse) and not Path(warehouse).exists():
        return None
    with connection(warehouse) as conn:
        ensure_publish_log(conn)
        return conn.execute("select max(eval_month) from audit.publish_log").fetchone()[0]


def record_publish(conn, month: str, run_id: str, exports: list[Path], action: str,
                   version: int, by: str | None = None, reason: str | None = None) -> None:
    ensure_publish_log(conn)
    conn.execute(
        "insert into audit.publish_log (eval_month, run_id, published_at, action, version, restated_by, reason, "
        "exports) values (?, ?, ?, ?, ?, ?, ?, ?)",
        [month, run_id, datetime.now(timezone.utc), action, version, by, reason, ";".join(str(p) for p in exports)],
    )


def published_by(conn, month: str, run_id: str) -> tuple[str, int, list[Path]] | None:
    """(action, version, files) of `run_id`'s publish of `month`, if it committed: an Airflow task
    retried or re-run after its commit finds its own publish here."""
    ensure_publish_log(conn)
    row = conn.execute("select action, version, exports from audit.publish_log where eval_month = ? and run_id = ? "
                       "order by published_at desc limit 1", [month, run_id]).fetchone()
    return None if row is None else (row[0], row[1], [Path(p) for p in (row[2] or "").split(";") if p])


def months_missing_files(conn, exports_dir: Path, but: str | None = None) -> list[str]:
    """Published months (other than `but`) whose latest publish wrote files into `exports_dir` that are
    not in place: a run killed between its commit and the renames of its files. The next run of any
    month writes them from the record (operations.md: the next run completes the work)."""
    ensure_publish_log(conn)
    latest = conn.execute(
        "select eval_month, exports from audit.publish_log as l where eval_month is distinct from ? and published_at = "
        "(select max(published_at) from audit.publish_log as m where m.eval_month = l.eval_month) "
        "order by eval_month", [but]).fetchall()
    folder = Path(exports_dir).resolve()
    missing = []
    for month, exports in latest:
        mine = [Path(p) for p in (exports or "").split(";") if p and Path(p).resolve().parent in (
            folder, folder / "managers")]
        if any(not p.exists() for p in mine):
            missing.append(month)
    return missing
