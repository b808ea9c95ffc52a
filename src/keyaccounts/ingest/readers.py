"""File readers: every format becomes header + rows of text with their source line.

One reader per format, chosen by file name; each returns a `FileContent` of strings so
that validation (contract.py / loader.py) is the same whatever the format. A file that
cannot be read as a whole raises `UnreadableFile` with a reason code of
`contract.FILE_REASONS`.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb

# Files still being written are left for the next run.
PARTIAL_SUFFIXES = (".tmp", ".part")
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl")
# Chinese Excel exports are GB18030/GBK; UTF-8 (with or without BOM) is tried first.
ENCODINGS = ("utf-8-sig", "gb18030")


class UnreadableFile(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class FileContent:
    header: list[str]
    rows: list[list[str | None]]  # aligned with header
    lines: list[int]  # 1-based source line (CSV: the line a record starts on; else row number)
    encoding: str | None = None
    extra_fields: list[bool] | None = None  # CSV: the record had more fields than the header
    # Parquet: no rows in Python; the loader scans the file in DuckDB (`scan_parquet`), so a
    # file of millions of rows costs no Python objects per value
    parquet: Path | None = None
    columns: dict[str, str] | None = None  # header name (stripped) -> the file's own column name


def is_candidate(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
        return False
    return name.endswith(SUPPORTED_SUFFIXES)


def _decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        pass
    # Mostly valid UTF-8 with a few bad sequences is a damaged (or mixed) UTF-8 file: read as
    # GB18030 it would decode "successfully" into garbage, so refuse it instead.
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good = sum(1 for ch in lenient if ord(ch) > 127 and ch != "\ufffd")
    if good > bad:
        raise UnreadableFile("undecodable", f"UTF-8 text with {bad} invalid byte sequence(s): damaged or mixed encodings")
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        raise UnreadableFile("undecodable", "bytes are neither UTF-8 nor GB18030 text") from None


def read_csv_bytes(data: bytes) -> FileContent:
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise UnreadableFile("empty", "the file has no header row")
    if b"\x00" in data[:4096]:
        raise UnreadableFile("unreadable", "binary content, not a CSV file")
    text, encoding = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise UnreadableFile("unreadable", f"cannot parse the header: {exc}") from None
    header = [h.strip() for h in header]
    rows: list[list[str | None]] = []
    lines: list[int] = []
    extra: list[bool] = []
    start = reader.line_num + 1
    width = len(header)
    try:
        for record in reader:
            if not record or (len(record) == 1 and record[0] == ""):
                start = reader.line_num + 1
                continue  # blank line
            if len(record) < width:
                record = record + [None] * (width - len(record))
            rows.append([(v if v != "" else None) for v in record[:width]])
            extra.append(len(record) > width and any(v.strip() for v in record[width:]))
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UnreadableFile("unreadable", f"CSV syntax error near line {reader.line_num}: {exc}") from None
    return FileContent(header, rows, lines, encoding, extra)


def _read_with_duckdb(path: Path, function: str) -> FileContent:
    con = duckdb.connect()
    try:
        rel = con.sql(f"select * from {function}(?)", params=[str(path)])
        header = [c.strip() for c in rel.columns]
        values = rel.fetchall()
    except duckdb.Error as exc:
        raise UnreadableFile("unreadable", str(exc).splitlines()[0]) from None
    finally:
        con.close()
    rows = [[None if v is None else str(v) for v in r] for r in values]
    return FileContent(header, rows, list(range(1, len(rows) + 1)))


def open_parquet(path: Path) -> FileContent:
    """Read a Parquet file's schema only (a file without a valid footer fails here)."""
    con = duckdb.connect()
    try:
        names = con.sql("select * from read_parquet(?)", params=[str(path)]).columns
    except duckdb.Error as exc:
        raise UnreadableFile("unreadable", str(exc).splitlines()[0]) from None
    finally:
        con.close()
    columns = {n.strip(): n for n in names}
    return FileContent(list(columns), [], [], parquet=path, columns=columns)


def scan_parquet_sql(content: FileContent, wanted: tuple[str, ...]) -> tuple[str, list]:
    """SQL (and its parameter) giving the file's rows as the contract's text columns, with
    `_line` (the row's number in the file, from 1) and `_extra_fields` (false): the same
    shape as the other readers, computed by DuckDB."""
    from keyaccounts.warehouse import quote_ident

    select = ", ".join(
        f"cast({quote_ident(content.columns[c])} as varchar) as {quote_ident(c)}" if c in content.columns
        else f"cast(null as varchar) as {quote_ident(c)}"
        for c in wanted
    )
    return (f"select {select}, file_row_number + 1 as _line, false as _extra_fields "
            f"from read_parquet(?, file_row_number = true)", [str(content.parquet)])


def read_file(path: Path) -> FileContent:
    name = path.name
    if name.endswith(".parquet"):
        return open_parquet(path)
    if name.endswith(".jsonl"):
        if path.stat().st_size == 0:
            raise UnreadableFile("empty", "the file is empty")
        return _read_with_duckdb(path, "read_json_auto")
    data = path.read_bytes()
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UnreadableFile("unreadable", f"not a gzip file: {exc}") from None
    return read_csv_bytes(data)
