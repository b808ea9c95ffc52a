"""Each output folder (exports, the BI copy in published/) belongs to one warehouse.

Two warehouses in one folder would write the same `exports/` and `published/`: each run would
overwrite the other's files, and a run with nothing new would take the other warehouse's files for
its own publish. So a warehouse gets an id (`audit.warehouse_id`, made once) that it writes into each
output folder on its first publish (`.keyaccounts-warehouse`); a run of another warehouse on that
folder stops before it builds anything (exit 3), saying how to give it a folder of its own.
A copy of a warehouse (a backup restored elsewhere) keeps the id, so it may use the folder's files."""

from __future__ import annotations

import uuid
from pathlib import Path

from keyaccounts.errors import InputError

MARKER = ".keyaccounts-warehouse"


def warehouse_id(conn) -> str:
    conn.execute("create schema if not exists audit")
    conn.execute("create table if not exists audit.warehouse_id (id varchar not null)")
    row = conn.execute("select id from audit.warehouse_id").fetchone()
    if row is None:
        row = (uuid.uuid4().hex,)
        conn.execute("insert into audit.warehouse_id values (?)", [row[0]])
    return row[0]


def claim_output_folders(conn, folders: list[Path], warehouse: str) -> None:
    """Mark each folder as this warehouse's, or stop if another warehouse's files are in it."""
    own = warehouse_id(conn)
    for folder in folders:
        marker = Path(folder) / MARKER
        holder = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
        if holder is None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            marker.write_text(own + "\n", encoding="utf-8")
        elif holder != own:
            raise InputError(f"{folder} holds the files of another warehouse, not of {warehouse}: give each warehouse "
                             "a folder of its own (its exports/ and published/ are made beside it; PostgreSQL: "
                             "--exports)")
