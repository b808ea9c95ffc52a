"""Exports of a month's tier table: CSV (UTF-8 with BOM, for Excel) and Parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from keyaccounts.publish.pending import PendingFiles, write_now

# Spreadsheet formula injection: a cell starting with one of these is prefixed with '.
# what makes a spreadsheet read a cell as a formula: = + - @, and a tab or carriage return before one
# (OWASP, CSV injection); ingest's trim keeps those two
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_month(conn, month: str, out_dir: Path, pending: PendingFiles | None = None) -> list[Path]:
    """Write tiers_<month>.csv and .parquet of the month's latest published version (the
    record, marts.published_tiers); return the paths. `conn` is a DuckDB or PostgreSQL
    warehouse connection; the files are written by pyarrow, the same for both. With
    `pending`, the files stay under temporary names until the caller's transaction commits."""
    if pending is None:
        return write_now(lambda p: export_month(conn, month, out_dir, p))
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    pending.sweep(out_dir, "tiers_*.tmp")
    table = conn.execute(
        "select * from marts.published_tiers where eval_month = ? and version = "
        "(select max(version) from marts.published_tiers where eval_month = ?)",
        [month, month],
    ).fetch_arrow_table()
    # sorted here, not in SQL: text order by bytes whatever the warehouse's collation
    table = table.sort_by([("value_rank", "ascending", "at_end"), ("customer_id", "ascending", "at_end")])
    csv_path, parquet_path = out_dir / f"tiers_{month}.csv", out_dir / f"tiers_{month}.parquet"
    pq.write_table(table, pending.temp_for(parquet_path))
    with pending.temp_for(csv_path).open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.column_names)
        for row in table.to_pylist():
            writer.writerow(["" if v is None else neutralise_cell(v) for v in row.values()])
    return [csv_path, parquet_path]


def report_files_of_version(out_dir: Path, month: str, version: int) -> list[Path] | None:
    """The month's manager files and report as the publish of `version` left them, if they are in
    place; else None. A re-run of a published month that restates nothing keeps them: they are built
    from the marts around the record, and the marts may now hold the rebuilt month (outputs.md: what
    was published is never rewritten in place). The report names its version, and a publish renames
    it into place after the managers' files, so a report of `version` means both are of it."""
    from keyaccounts.publish.report import version_line

    managers, report = out_dir / "managers" / month, out_dir / f"report_{month}.html"
    if not (managers.is_dir() and report.is_file()):
        return None
    # the version line follows the embedded plotly.js (5 MB in all: read in milliseconds)
    text = report.read_text(encoding="utf-8", errors="replace")
    return [managers, report] if version_line(version) in text else None
