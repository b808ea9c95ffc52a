"""The BI read path of outputs.md: `published/marts.duckdb` (the `marts` tables only) and
`published/parquet/<table>.parquet`, next to the warehouse.

DuckDB allows one writer, so BI tools never open the warehouse itself. Each publish writes
a complete new copy beside the old one and swaps it in with an atomic rename: a reader sees
one whole publish, old or new, and a reader holding the old file open keeps reading it
(POSIX keeps a renamed-over file alive while it is open). The Parquet folder is reached
through a symlink that is replaced atomically; the folder it replaced is kept until the
next publish (a reader may still be listing it), older ones are removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from keyaccounts.publish.pending import PendingFiles
from keyaccounts.warehouse import quote_ident

BATCH_ROWS = 100_000


def stage_bi_copy(conn: duckdb.DuckDBPyConnection, warehouse: Path, run_id: str, pending: PendingFiles) -> Path:
    """Write the next BI copy from the marts as `conn` sees them (inside the publish
    transaction: the new marts, not yet committed); `pending` swaps it in after the commit.

    DuckDB lets one transaction write one database only, so the copy is written through a
    second connection, fed by Arrow batches streamed from the warehouse."""
    published = Path(warehouse).parent / "published"
    published.mkdir(parents=True, exist_ok=True)
    pending.sweep(published, "*.tmp")
    link = published / "parquet"
    previous = os.readlink(link) if link.is_symlink() else None
    tables = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by 1").fetchall()]
    tag = "".join(ch if ch.isalnum() else "_" for ch in run_id)

    def batches(table: str):
        return conn.execute(f"select * from marts.{quote_ident(table)}").fetch_record_batch(BATCH_ROWS)

    # 1. the DuckDB copy; tables go to the file's default schema: opened as `marts.duckdb`, its
    # catalog is `marts`, so `select * from marts.customer_tier_monthly` reads exactly as in the
    # warehouse (a schema also named marts inside it would make that name ambiguous in DuckDB)
    tmp_db = pending.temp_for(published / "marts.duckdb")
    tmp_db.unlink(missing_ok=True)
    with duckdb.connect(str(tmp_db)) as copy:
        for t in tables:
            copy.register("incoming", batches(t))
            copy.execute(f"create table main.{quote_ident(t)} as select * from incoming")
            copy.unregister("incoming")

    # 2. one Parquet file per mart, in a new folder the `parquet` symlink then points to
    folder = pending.scratch(published / f"parquet-{tag}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for t in tables:
        reader = batches(t)
        with pq.ParquetWriter(folder / f"{t}.parquet", reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    link_tmp = pending.temp_for(link)
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(folder.name)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)

    def drop_old_versions() -> None:
        # keep the new folder and the one it replaced (a reader may be listing it right now);
        # any other is older, or was written by a run killed before its commit
        for old in published.glob("parquet-*"):
            if old.is_dir() and old.name not in (folder.name, previous):
                shutil.rmtree(old, ignore_errors=True)

    pending.after_commit(drop_old_versions)
    return published
