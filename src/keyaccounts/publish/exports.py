"""Exports of a month's tier table: CSV (UTF-8 with BOM, for Excel) and Parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from keyaccounts.publish.pending import PendingFiles, write_now

# Spreadsheet formula injection: a cell starting with one of these is prefixed with '.
_FORMULA_PREFIXES = ("=", "+", "-", "@")


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
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
    """The month's manager files and report as a publish of `version` left them, if they are all in
    place (the Parquet export says which version the files come from); else None. A re-run of a
    published month that restates nothing keeps them: they are built from the marts around the
    record, and the marts may now hold the rebuilt month (outputs.md: what was published is never
    rewritten in place)."""
    parquet, managers, report = (out_dir / f"tiers_{month}.parquet", out_dir / "managers" / month,
                                 out_dir / f"report_{month}.html")
    if not (parquet.is_file() and managers.is_dir() and report.is_file()):
        return None
    try:
        versions = set(pq.read_table(parquet, columns=["version"]).column("version").to_pylist())
    except Exception:  # noqa: BLE001 - an unreadable or foreign file: written again
        return None
    return [managers, report] if versions == {version} else None
