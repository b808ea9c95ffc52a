"""Exports of a month's tier table: CSV (UTF-8 with BOM, for Excel) and Parquet."""

from __future__ import annotations

from pathlib import Path

import duckdb

# Spreadsheet formula injection: a cell starting with one of these is prefixed with '.
_FORMULA_PREFIXES = ("=", "+", "-", "@")


def neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def export_month(conn: duckdb.DuckDBPyConnection, month: str, out_dir: Path) -> list[Path]:
    """Write tiers_<month>.csv and .parquet of the month's latest published version (the
    record, marts.published_tiers); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = conn.execute(
        "select * from marts.published_tiers where eval_month = ? and version = "
        "(select max(version) from marts.published_tiers where eval_month = ?) "
        "order by value_rank nulls last, customer_id",
        [month, month],
    ).fetch_arrow_table()
    parquet_path = out_dir / f"tiers_{month}.parquet"
    csv_path = out_dir / f"tiers_{month}.csv"
    tmp_parquet = parquet_path.with_suffix(".parquet.tmp")
    import csv

    tmp_csv = csv_path.with_suffix(".csv.tmp")
    try:
        conn.register("export_rows", table)
        try:
            conn.execute(f"copy export_rows to '{_sql_path(tmp_parquet)}' (format parquet)")
        finally:
            conn.unregister("export_rows")
        with tmp_csv.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.column_names)
            for row in table.to_pylist():
                writer.writerow(["" if v is None else neutralise_cell(v) for v in row.values()])
        tmp_parquet.replace(parquet_path)
        tmp_csv.replace(csv_path)
    except (OSError, duckdb.IOException):
        tmp_parquet.unlink(missing_ok=True)  # never leave a half-written file behind
        tmp_csv.unlink(missing_ok=True)
        raise
    return [csv_path, parquet_path]


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
