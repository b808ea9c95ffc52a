"""The BI read path of outputs.md: `published/marts.duckdb` (the `marts` tables only) and
`published/parquet/<table>.parquet`, next to the warehouse.

DuckDB allows one writer, so BI tools never open the warehouse itself. Each publish writes
a complete new copy beside the old one and swaps it in with an atomic rename: a reader sees
one whole publish, old or new, and a reader holding the old file open keeps reading it
(POSIX keeps a renamed-over file alive while it is open). The Parquet folder is reached
through a symlink that is replaced atomically; older folders are removed after a grace of
two publishes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from keyaccounts.warehouse import quote_ident

KEEP_PARQUET_VERSIONS = 2


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def refresh_bi_copy(conn: duckdb.DuckDBPyConnection, warehouse: Path, run_id: str) -> Path:
    published = Path(warehouse).parent / "published"
    published.mkdir(parents=True, exist_ok=True)
    tables = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by 1").fetchall()]
    tag = "".join(ch if ch.isalnum() else "_" for ch in run_id)

    # 1. the DuckDB copy
    tmp_db = published / f".marts-{tag}.duckdb"
    tmp_db.unlink(missing_ok=True)
    conn.execute(f"attach {_sql_str(str(tmp_db))} as bi_copy")
    try:
        # tables go to the file's default schema: opened as `marts.duckdb`, its catalog is `marts`,
        # so `select * from marts.customer_tier_monthly` reads exactly as in the warehouse (a schema
        # also named marts inside it would make that name ambiguous in DuckDB)
        for t in tables:
            conn.execute(f"create table bi_copy.main.{quote_ident(t)} as select * from marts.{quote_ident(t)}")
    finally:
        conn.execute("detach bi_copy")
    os.replace(tmp_db, published / "marts.duckdb")

    # 2. one Parquet file per mart, in a new folder the `parquet` symlink then points to
    folder = published / f"parquet-{tag}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for t in tables:
        conn.execute(f"copy marts.{quote_ident(t)} to {_sql_str(str(folder / (t + '.parquet')))} (format parquet)")
    link_tmp = published / f".parquet-link-{tag}"
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(folder.name)
    link = published / "parquet"
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(link_tmp, link)
    versions = sorted((p for p in published.glob("parquet-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in versions[:-KEEP_PARQUET_VERSIONS]:
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return published
