"""Ingest: inbox files -> raw.<feed> (good rows) and quarantine.<feed> (bad rows).

Raw tables keep every contract column as text plus load metadata (`_file`, `_line`,
`_file_seq`, `_run_id`, `_loaded_at`); typing, de-duplication and currency conversion
happen in dbt staging. Each file is taken in one transaction together with its manifest
row, so a file is either fully recorded or not at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from keyaccounts.errors import InputError, RejectThresholdExceeded
from keyaccounts.ingest import readers
from keyaccounts.ingest.contract import FEEDS, Column, Feed
from keyaccounts.warehouse import quote_ident

META_COLUMNS = ("_file", "_line", "_file_seq", "_run_id", "_loaded_at")

NUMBER_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
INTEGER_RE = r"^[+-]?[0-9]+$"
MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
CURRENCY_RE = r"^[A-Z]{3}$"


@dataclass
class FeedStats:
    feed: str
    files_seen: int = 0
    files_taken: int = 0
    files_skipped: int = 0  # already taken (same checksum)
    files_quarantined: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_updated: int = 0  # loaded rows whose key was already known
    rows_quarantined: int = 0

    @property
    def reject_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


@dataclass
class IngestResult:
    run_id: str
    feeds: dict[str, FeedStats] = field(default_factory=dict)


def _sql_literal_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _column_checks(col: Column) -> list[str]:
    """SQL expressions, each yielding a reason code or NULL, for one text column `v`."""
    v = f"nullif(trim({quote_ident(col.name)}), '')"
    name = col.name
    checks = []
    if col.required:
        checks.append(f"case when {v} is null then '{col.missing_reason or 'missing:' + name}' end")
    kind_checks = {
        "date": f"try_strptime({v}, '%Y-%m-%d') is null",
        "timestamp": f"try_cast({v} as timestamptz) is null",
        "month": f"not regexp_full_match({v}, '{MONTH_RE}')",
        "decimal": f"not regexp_full_match({v}, '{NUMBER_RE}')",
        "integer": f"not regexp_full_match({v}, '{INTEGER_RE}')",
        "currency": f"not regexp_full_match({v}, '{CURRENCY_RE}')",
    }
    codes = {"date": "bad_date", "timestamp": "bad_timestamp", "month": "bad_month",
             "decimal": "bad_number", "integer": "bad_integer", "currency": "bad_currency"}
    if col.kind in kind_checks:
        checks.append(f"case when {v} is not null and {kind_checks[col.kind]} then '{codes[col.kind]}:{name}' end")
    if col.allowed:
        checks.append(f"case when {v} is not null and {v} not in ({_sql_literal_list(col.allowed)}) "
                      f"then 'not_allowed:{name}' end")
    if col.min_value is not None or col.max_value is not None:
        num = f"try_cast({v} as decimal(38, 8))"
        conds = []
        if col.min_value is not None:
            conds.append(f"{num} {'<=' if col.min_exclusive else '<'} {col.min_value}")
        if col.max_value is not None:
            conds.append(f"{num} > {col.max_value}")
        checks.append(f"case when {num} is not null and ({' or '.join(conds)}) then 'out_of_range:{name}' end")
    return checks


def _row_rule_checks(feed: Feed) -> list[str]:
    checks = []
    for code, predicate in feed.row_rules:
        # Row rules compare typed values; only evaluated when the inputs parse.
        typed = predicate
        for col in feed.columns:
            if col.kind == "date" and col.name in predicate:
                typed = typed.replace(col.name, f"try_strptime(nullif(trim({quote_ident(col.name)}), ''), '%Y-%m-%d')")
        checks.append(f"case when coalesce(not ({typed}), false) then '{code}' end")
    return checks


def reason_expression(feed: Feed) -> str:
    checks = [c for col in feed.columns for c in _column_checks(col)] + _row_rule_checks(feed)
    return f"nullif(concat_ws(';', {', '.join(checks)}), '')"


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    for schema in ("raw", "quarantine", "audit"):
        conn.execute(f"create schema if not exists {schema}")
    conn.execute(
        """create table if not exists audit.manifest (
            file_seq bigint primary key, run_id varchar, feed varchar, file_name varchar,
            size_bytes bigint, sha256 varchar, encoding varchar, rows_read bigint,
            rows_loaded bigint, rows_quarantined bigint, status varchar, reason varchar,
            taken_at timestamptz)"""
    )
    conn.execute(
        """create table if not exists quarantine.files (
            run_id varchar, feed varchar, file_name varchar, sha256 varchar,
            reason varchar, detail varchar, quarantined_at timestamptz)"""
    )
    conn.execute(
        """create table if not exists audit.ingest_runs (
            run_id varchar, feed varchar, files_seen bigint, files_taken bigint,
            files_skipped bigint, files_quarantined bigint, rows_read bigint,
            rows_loaded bigint, rows_updated bigint, rows_quarantined bigint,
            finished_at timestamptz)"""
    )
    for feed in FEEDS.values():
        cols = ", ".join(f"{quote_ident(c)} varchar" for c in feed.column_names)
        conn.execute(
            f"create table if not exists raw.{feed.name} ({cols}, _file varchar, _line bigint, "
            "_file_seq bigint, _run_id varchar, _loaded_at timestamptz)"
        )
        conn.execute(
            f"create table if not exists quarantine.{feed.name} ({cols}, _file varchar, _line bigint, "
            "_file_seq bigint, _run_id varchar, _loaded_at timestamptz, _reason varchar)"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_arrow(feed: Feed, content: readers.FileContent) -> pa.Table:
    """Align a file's columns with the contract (absent optional columns are null)."""
    index = {name: i for i, name in enumerate(content.header)}
    arrays = {}
    for name in feed.column_names:
        i = index.get(name)
        arrays[name] = pa.array(
            [r[i] for r in content.rows] if i is not None else [None] * len(content.rows), pa.string()
        )
    arrays["_line"] = pa.array(content.lines, pa.int64())
    return pa.table(arrays)


def _take_file(conn, feed: Feed, path: Path, rel_name: str, sha: str, run_id: str, stats: FeedStats) -> None:
    now = datetime.now(timezone.utc)
    file_seq = conn.execute("select coalesce(max(file_seq), 0) + 1 from audit.manifest").fetchone()[0]
    size = path.stat().st_size
    try:
        content = readers.read_file(path)
        missing = [c for c in feed.required_columns if c not in content.header]
        if missing:
            raise readers.UnreadableFile("missing_columns", "missing required column(s): " + ", ".join(missing))
    except readers.UnreadableFile as bad:
        conn.execute("begin transaction")
        conn.execute(
            "insert into quarantine.files values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, feed.name, rel_name, sha, bad.reason, bad.detail, now],
        )
        conn.execute(
            "insert into audit.manifest values (?, ?, ?, ?, ?, ?, NULL, 0, 0, 0, 'quarantined', ?, ?)",
            [file_seq, run_id, feed.name, rel_name, size, sha, bad.reason, now],
        )
        conn.execute("commit")
        stats.files_quarantined += 1
        return

    table = _file_arrow(feed, content)
    conn.register("incoming", table)
    cols = ", ".join(quote_ident(c) for c in feed.column_names)
    key_match = " and ".join(f"k.{quote_ident(k)} = s.{quote_ident(k)}" for k in feed.key)
    conn.execute("begin transaction")
    try:
        conn.execute(
            f"create or replace temp table checked as select *, {reason_expression(feed)} as _reason from incoming"
        )
        meta = "?, _line, ?, ?, ?"
        params = [rel_name, file_seq, run_id, now]
        updated = conn.execute(
            f"select count(*) from checked s where _reason is null and exists "
            f"(select 1 from raw.{feed.name} k where {key_match})"
        ).fetchone()[0]
        conn.execute(
            f"insert into raw.{feed.name} select {cols}, {meta} from checked where _reason is null order by _line",
            params,
        )
        conn.execute(
            f"insert into quarantine.{feed.name} select {cols}, {meta}, _reason from checked "
            "where _reason is not null order by _line",
            params,
        )
        loaded, quarantined = conn.execute(
            "select count(*) filter (where _reason is null), count(*) filter (where _reason is not null) from checked"
        ).fetchone()
        conn.execute(
            "insert into audit.manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?)",
            [file_seq, run_id, feed.name, rel_name, size, sha, content.encoding, len(content.rows), loaded,
             quarantined, now],
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    finally:
        conn.unregister("incoming")
    stats.files_taken += 1
    stats.rows_read += len(content.rows)
    stats.rows_loaded += loaded
    stats.rows_updated += updated
    stats.rows_quarantined += quarantined


def ingest_inbox(
    conn: duckdb.DuckDBPyConnection, inbox: Path, run_id: str, reject_threshold: float = 0.05
) -> IngestResult:
    """Take every new file of every feed folder in `inbox`; raise if too many rows are bad."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise InputError(f"inbox {inbox} is not a readable folder")
    ensure_schema(conn)
    taken = {row[0] for row in conn.execute("select sha256 from audit.manifest").fetchall()}
    result = IngestResult(run_id)
    for feed in FEEDS.values():
        stats = FeedStats(feed.name)
        result.feeds[feed.name] = stats
        folder = inbox / feed.name
        if not folder.is_dir():
            continue  # an absent feed is allowed: its measures are null
        try:
            # byte order of names decides which file is "taken later" within one run
            files = sorted((p for p in folder.iterdir() if p.is_file() and readers.is_candidate(p)),
                           key=lambda p: p.name.encode())
        except PermissionError:
            raise InputError(f"inbox folder {folder} is not readable") from None
        for path in files:
            stats.files_seen += 1
            try:
                sha = _sha256(path)
            except PermissionError:
                raise InputError(f"inbox file {path} is not readable") from None
            if sha in taken:
                stats.files_skipped += 1  # the same content under any name is taken once
                continue
            _take_file(conn, feed, path, f"{feed.name}/{path.name}", sha, run_id, stats)
            taken.add(sha)
    now = datetime.now(timezone.utc)
    for s in result.feeds.values():
        conn.execute(
            "insert into audit.ingest_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, s.feed, s.files_seen, s.files_taken, s.files_skipped, s.files_quarantined, s.rows_read,
             s.rows_loaded, s.rows_updated, s.rows_quarantined, now],
        )
    over = [s for s in result.feeds.values() if s.reject_share > reject_threshold]
    if over:
        s = over[0]
        raise RejectThresholdExceeded(
            f"{s.rows_quarantined} of {s.rows_read} {s.feed} rows ({s.reject_share:.1%}) were quarantined, "
            f"over the {reject_threshold:.0%} reject threshold; nothing was published",
            details=f"select * from quarantine.{s.feed} where _run_id = '{run_id}'",
        )
    return result
