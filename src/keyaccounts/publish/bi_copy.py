"""The BI read path of outputs.md: `published/marts.duckdb` (the `marts` tables only) and
`published/parquet/<table>.parquet`, next to the warehouse.

DuckDB allows one writer, so BI tools never open the warehouse itself. Each publish writes
a complete new copy beside the old one and swaps it in with an atomic rename: a reader sees
one whole publish, old or new, and a reader holding the old file open keeps reading it
(POSIX keeps a renamed-over file alive while it is open). The Parquet folder is reached
through a symlink that is replaced atomically; the folder it replaced is kept until the
next publish (a reader may still be listing it), older ones are removed. A reader that opens a
file by path more than once in one query (DuckDB's `read_parquet`: at bind, and again per scan
thread) must resolve the symlink once first; otherwise a swap between two opens pairs the old
footer with the new file's pages.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb

from keyaccounts.publish.pending import PendingFiles
from keyaccounts.publish.wap import SCHEMA, published_tables, table_columns
from keyaccounts.warehouse import duckdb_settings, quote_ident


# a quarter of the run's memory limit: the warehouse's own instance is still open beside it,
# holding its buffers (with both at the full limit a run at L peaked at 15.7 GB RSS); loading
# tables from Parquet streams, and spills past the limit
COPY_MEMORY_SHARE = 4
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def copy_settings(warehouse: Path) -> dict[str, str]:
    """The run's DuckDB settings for the copy's own instance (DuckDB's default memory limit is
    80% of the RAM), with a share of the memory limit and its own spill folder beside the run's (two
    instances must not share temporary files)."""
    settings = duckdb_settings(warehouse)
    # a sibling, not a subfolder: DuckDB creates one level of folder, and the run's may not exist yet
    run_temp = Path(settings["temp_directory"])
    settings["temp_directory"] = str(run_temp.with_name(run_temp.name + ".bi_copy"))
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", settings["memory_limit"])
    if match and match.group(2).lower() in _UNITS:  # anything else is left for DuckDB to judge
        limit = float(match.group(1)) * _UNITS[match.group(2).lower()]
        settings["memory_limit"] = f"{max(int(limit / COPY_MEMORY_SHARE / 2**20), 16)}MiB"
    return settings


def copy_tag(run_id: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in run_id)


def is_copy_of(warehouse: Path, run_id: str) -> bool:
    """Whether the BI copy in place is the one `run_id`'s publish wrote."""
    link = Path(warehouse).parent / "published" / "parquet"
    return link.is_symlink() and os.readlink(link) == f"parquet-{copy_tag(run_id)}"


def stage_bi_copy(conn: duckdb.DuckDBPyConnection, warehouse: Path, run_id: str, pending: PendingFiles) -> Path:
    """Write the next BI copy from the marts as `conn` sees them (inside the publish
    transaction: the new marts, not yet committed); `pending` swaps it in after the commit.

    The warehouse's connection writes the Parquet files (a COPY reads the uncommitted marts);
    the DuckDB copy is loaded from them through a second connection."""
    published = Path(warehouse).parent / "published"
    published.mkdir(parents=True, exist_ok=True)
    pending.sweep(published, "*.tmp")
    link = published / "parquet"
    previous = os.readlink(link) if link.is_symlink() else None
    tables = published_tables(conn)
    tag = copy_tag(run_id)

    # 1. one Parquet file per mart, written by DuckDB itself (no rows pass through Python), in a
    # new folder the `parquet` symlink then points to
    folder = pending.scratch(published / f"parquet-{tag}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for t in tables:
        # COPY takes no parameter for its target; the path is ours (warehouse folder + table name)
        target = str(folder / f"{t}.parquet").replace("'", "''")
        conn.execute(f"copy (select * from marts.{quote_ident(t)}) to '{target}' (format parquet)")

    # 2. the DuckDB copy, loaded from those files through a second connection (DuckDB lets one
    # transaction write one database only). Tables go to the file's default schema: opened as
    # `marts.duckdb`, its catalog is `marts`, so `select * from marts.customer_tier_monthly` reads
    # exactly as in the warehouse (a schema also named marts inside it would make that name
    # ambiguous in DuckDB). Column types are set from the warehouse's, so the copy matches it even
    # where Parquet has no such type.
    tmp_db = pending.temp_for(published / "marts.duckdb")
    tmp_db.unlink(missing_ok=True)
    with duckdb.connect(str(tmp_db), config=copy_settings(warehouse)) as copy:
        for t in tables:
            cols = ", ".join(f"cast({quote_ident(c)} as {typ}) as {quote_ident(c)}"
                             for c, typ in table_columns(conn, SCHEMA, t))
            copy.execute(f"create table main.{quote_ident(t)} as select {cols} from read_parquet(?)",
                         [str(folder / f"{t}.parquet")])
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
