"""Ingest: inbox files -> raw.<feed> (good rows) and quarantine.<feed> (bad rows).

Raw tables keep every contract column as text plus load metadata (`_file`, `_line`,
`_file_seq`, `_run_id`, `_loaded_at`); typing, de-duplication and currency conversion
happen in dbt staging. Each file is taken in one transaction together with its manifest
row, so a file is either fully recorded or not at all.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from keyaccounts.errors import InputError, RejectThresholdExceeded
from keyaccounts.ingest import readers
from keyaccounts.ingest.contract import FEEDS, ISO_4217, REJECT_THRESHOLD, Column, Feed
from keyaccounts.warehouse import quote_ident

META_COLUMNS = ("_file", "_line", "_file_seq", "_run_id", "_loaded_at")

NUMBER_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
INTEGER_RE = r"^[+-]?[0-9]+$"
PERSONAL_WITHHELD = "(withheld: personal data)"
# years 0001..9999: DuckDB reads year 0000 as 1 BC, which PostgreSQL cannot store (its run would stop on
# the raw row at every run after)
YEAR_RE = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
MONTH_RE = rf"^{YEAR_RE}-(0[1-9]|1[0-2])$"
DATE_RE = rf"^{YEAR_RE}-[0-9]{{2}}-[0-9]{{2}}$"
# ISO 8601: a date, or a date and time with an optional offset (Z, +08, +0800, +08:00)
# offsets as the world uses them: -12:00 .. +14:00 at most, minutes 00..59 (DuckDB would apply +25:00 or
# +08:99 as written, moving the instant that decides which update of a key wins)
TIMESTAMP_RE = (rf"^{YEAR_RE}-[0-9]{{2}}-[0-9]{{2}}"
                r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
                r"(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?$")


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
    bad_files: list[str] = field(default_factory=list)  # quarantined whole: name (reason: detail)

    @property
    def reject_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


@dataclass
class IngestResult:
    run_id: str
    feeds: dict[str, FeedStats] = field(default_factory=dict)
    # folders of the inbox that name no feed (`Orders/`, `survey/`): never read, so said aloud
    unknown_folders: list[str] = field(default_factory=list)


def unknown_folders(inbox: Path) -> list[str]:
    """Each folder of the inbox that is no feed's, with the feed it probably meant: `Orders/ (orders/?)`.
    Feed folders are matched by their exact name, so a misnamed one would otherwise be skipped in silence."""
    import difflib

    notes = []
    for folder in sorted(readers.display_name(p.name) for p in inbox.iterdir()
                         if p.is_dir() and not p.name.startswith(".")):
        if folder in FEEDS:
            continue
        guess = [f for f in FEEDS if f == folder.lower().strip()] or difflib.get_close_matches(
            folder.lower(), list(FEEDS), n=1, cutoff=0.5) or [f for f in FEEDS if f.startswith(folder.lower()[:4])]
        notes.append(f"{folder}/" + (f" (did you mean {guess[0]}/?)" if guess else ""))
    return notes


def _sql_literal_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def with_seconds(text_sql: str) -> str:
    """'2024-05-02T08:00+08:00' -> '2024-05-02T08:00:00+08:00': ISO 8601 allows minute precision,
    DuckDB's cast needs seconds (the same normalisation as the dbt macro parse_timestamp_utc)."""
    return (f"regexp_replace({text_sql}, '^([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9]{{2}}:[0-9]{{2}})"
            f"(Z|[+-].*)?$', '\\1:00\\2')")


def _decimal(text_sql: str, scale: int = 8) -> str:
    """text -> decimal(38, scale) (staging's type), or NULL. DuckDB 1.4 casts text to a decimal
    wider than 18 digits about 100x slower than to decimal(18, 8); the narrow cast, widened, gives
    the same value, and the wide one only runs for values the narrow one cannot hold (10^10 or
    more). Other scales (fx rates: a few rows) take the wide cast."""
    if scale != 8:
        return f"try_cast({text_sql} as decimal(38, {scale}))"
    return (f"coalesce(cast(try_cast({text_sql} as decimal(18, 8)) as decimal(38, 8)), "
            f"try_cast({text_sql} as decimal(38, 8)))")


def _column_checks(col: Column) -> list[str]:
    """SQL expressions, each yielding a reason code or NULL, for one text column `v`.

    A value passes its kind's check only if it has the contract's format *and* converts to
    the type staging casts it to, so no row that passes here can break the dbt build."""
    v = f"nullif(trim({quote_ident(col.name)}), '')"
    name = col.name
    checks = []
    if col.required:
        checks.append(f"case when {v} is null then '{col.missing_reason or 'missing:' + name}' end")
    kind_checks = {
        "date": f"not regexp_full_match({v}, '{DATE_RE}') or try_cast({v} as date) is null",
        "timestamp": f"not regexp_full_match({v}, '{TIMESTAMP_RE}') or try_cast({with_seconds(v)} as timestamptz) is null",
        "month": f"not regexp_full_match({v}, '{MONTH_RE}')",
        "decimal": f"not regexp_full_match({v}, '{NUMBER_RE}') or {_decimal(v, col.scale)} is null",
        "integer": f"not regexp_full_match({v}, '{INTEGER_RE}') or try_cast({v} as integer) is null",
        "currency": f"{v} not in ({_sql_literal_list(ISO_4217)})",
    }
    codes = {"date": "bad_date", "timestamp": "bad_timestamp", "month": "bad_month",
             "decimal": "bad_number", "integer": "bad_integer", "currency": "bad_currency"}
    if col.kind in kind_checks:
        checks.append(f"case when {v} is not null and ({kind_checks[col.kind]}) then '{codes[col.kind]}:{name}' end")
    if col.allowed:
        checks.append(f"case when {v} is not null and {v} not in ({_sql_literal_list(col.allowed)}) "
                      f"then 'not_allowed:{name}' end")
    if col.min_value is not None or col.max_value is not None:
        num = _decimal(v, col.scale)
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
                typed = typed.replace(col.name, f"try_cast(nullif(trim({quote_ident(col.name)}), '') as date)")
        stamps = [c.name for c in feed.columns if c.kind == "timestamp" and re.search(rf"\b{c.name}\b", typed)]
        if stamps:
            typed = _timestamp_rule(typed, stamps)
        checks.append(f"case when coalesce(not ({typed}), false) then '{code}' end")
    return checks


# a time of day followed by an offset (the same test as the dbt macro parse_timestamp_utc)
OFFSET_RE = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def _timestamp_rule(predicate: str, names: list[str]) -> str:
    """A rule over timestamps: as instants when every input carries an offset, as local times when
    none does; a mix (one with an offset, one without) needs the business time zone, so it is
    left to staging (dbt: held_back), and passes here."""
    values = {n: f"nullif(trim({quote_ident(n)}), '')" for n in names}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")

    def typed(kind: str) -> str:
        return pattern.sub(lambda m: f"try_cast({with_seconds(values[m.group(1)])} as {kind})", predicate)

    offset = {n: f"regexp_matches({v}, '{OFFSET_RE}')" for n, v in values.items()}
    return (f"case when {' and '.join(offset.values())} then ({typed('timestamptz')}) "
            f"when not ({' or '.join(offset.values())}) then ({typed('timestamp')}) end")


def reason_expression(feed: Feed) -> str:
    # a record with more fields than the header cannot be aligned with its columns
    width = "case when _extra_fields then 'too_many_fields' end"
    # a NUL character is no text any SQL warehouse stores (PostgreSQL refuses it)
    nul = [f"case when strpos({quote_ident(c)}, chr(0)) > 0 then 'nul_character:{c}' end" for c in feed.column_names]
    checks = [width] + nul + [c for col in feed.columns for c in _column_checks(col)] + _row_rule_checks(feed)
    return f"nullif(concat_ws(';', {', '.join(checks)}), '')"


def ensure_schema(conn) -> None:
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
            run_id varchar, feed varchar, status varchar, files_seen bigint, files_taken bigint,
            files_skipped bigint, files_quarantined bigint, rows_read bigint,
            rows_loaded bigint, rows_updated bigint, rows_quarantined bigint,
            finished_at timestamptz)"""
    )
    conn.execute(
        "create table if not exists audit.watermarks (source varchar, feed varchar, watermark varchar, "
        "run_id varchar, updated_at timestamptz)"
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
    arrays["_extra_fields"] = pa.array(content.extra_fields or [False] * len(content.rows), pa.bool_())
    arrays["_short_fields"] = pa.array(content.short_fields or [False] * len(content.rows), pa.bool_())
    return pa.table(arrays)


@dataclass
class _StagedFile:
    """A file read and checked, not yet recorded: rows wait in a temp table until the run
    knows it is under the reject threshold."""

    feed: Feed
    rel_name: str
    sha: str
    size: int
    encoding: str | None = None
    temp_table: str | None = None
    rows_read: int = 0
    rows_bad: int = 0
    bad_reason: str | None = None  # whole-file quarantine
    bad_detail: str | None = None
    watermark: tuple[str, str, str] | None = None  # SQL source: (source, feed, latest updated_at)


def _stage_file(stage, target, feed: Feed, path: Path, rel_name: str, sha: str, n: int) -> _StagedFile:
    staged = _StagedFile(feed, rel_name, sha, path.stat().st_size)
    try:
        content = readers.read_file(path)
    except readers.UnreadableFile as bad:
        staged.bad_reason, staged.bad_detail = bad.reason, bad.detail
        return staged
    return _stage_content(stage, target, staged, content, n)


def _stage_content(stage, target, staged: _StagedFile, content: readers.FileContent, n: int) -> _StagedFile:
    """Check a delivery's rows against the contract into a temp table (nothing recorded yet).

    The contract checks run in DuckDB (`stage`): the warehouse itself, or an in-memory DuckDB
    when the warehouse is PostgreSQL; then the checked rows move to a temp table there."""
    feed = staged.feed
    if not content.header:  # a JSON file holding [] or records without keys: no header row, like a CSV of no bytes
        staged.bad_reason, staged.bad_detail = "empty", "no column: the file holds no record, or records without keys"
        return staged
    if not set(content.header) & set(feed.column_names):
        # "not a CSV/Parquet/JSON at all" (sources.md): an HTML error page or a report saved as .csv
        # reads as text with a header of no contract column; a `;`-separated export reads as one column
        hint = " (one column: separated by ';' or tabs, not ','?)" if len(content.header) == 1 else ""
        staged.bad_reason = "unreadable"
        staged.bad_detail = (f"no column of the {feed.name} contract in its header{hint}: not a {feed.name} file "
                             f"(first columns: {', '.join(content.header[:3])[:120]})")
        return staged
    missing = [c for c in feed.required_columns if c not in content.header]
    if missing:
        # quarantined whole like any file that cannot be read as a whole: sources.md says the other files
        # still load, so its rows do not count toward the reject threshold (docs/ingest.md)
        n_rows = pq.ParquetFile(content.parquet).metadata.num_rows if content.parquet is not None else len(content.rows)
        staged.bad_reason = "missing_columns"
        staged.bad_detail = f"missing required column(s): {', '.join(missing)}; none of its {n_rows} row(s) loaded"
        return staged
    staged.encoding = content.encoding
    staged.temp_table = f"ingest_stage_{n}"
    create = f"create or replace temp table {staged.temp_table} as select *, {reason_expression(feed)} as _reason from"
    if content.parquet is not None:
        scan, params = readers.scan_parquet_sql(content, {c.name: c.kind for c in feed.columns})
        try:
            stage.execute(f"{create} ({scan}) as incoming", params)
        except duckdb.Error as exc:  # a damaged page deep in the file: the file as a whole
            staged.temp_table = None
            staged.bad_reason, staged.bad_detail = "unreadable", str(exc).splitlines()[0]
            return staged
    else:
        stage.register("incoming", _file_arrow(feed, content))
        try:
            stage.execute(f"{create} incoming")
        finally:
            stage.unregister("incoming")
    staged.rows_read, staged.rows_bad = stage.execute(
        f"select count(*), count(*) filter (where _reason is not null) from {staged.temp_table}"
    ).fetchone()
    if stage is not target:
        _move_to_target(stage, target, staged)
    return staged


def _move_to_target(stage, target, staged: _StagedFile) -> None:
    columns = list(staged.feed.column_names) + ["_line", "_extra_fields", "_short_fields", "_reason"]
    cols = ", ".join(f"{quote_ident(c)} varchar" for c in staged.feed.column_names)
    target.execute(f"drop table if exists {staged.temp_table}")
    target.execute(f"create temp table {staged.temp_table} ({cols}, _line bigint, _extra_fields boolean, "
                   "_short_fields boolean, _reason varchar)")
    rows = stage.execute(f"select {', '.join(quote_ident(c) for c in columns)} from {staged.temp_table}").fetchall()
    target.copy_rows(staged.temp_table, columns, rows)
    stage.execute(f"drop table {staged.temp_table}")


def _stage_sql(stage, conn, source, feed: Feed, n: int, taken: _Taken) -> _StagedFile | None:
    from keyaccounts.ingest.sql_source import pull_feed

    row = conn.execute("select watermark from audit.watermarks where source = ? and feed = ?",
                       [source.name, feed.name]).fetchone()
    rel_name = f"sql:{source.table_name(feed.name)}"
    try:
        pulled = pull_feed(source.connection, source, feed.name, row[0] if row else None)
    except readers.UnreadableFile as bad:
        return _StagedFile(feed, rel_name, f"sql-error:{source.name}:{feed.name}:{bad.reason}", 0,
                           bad_reason=bad.reason, bad_detail=bad.detail)
    staged = _StagedFile(feed, f"{rel_name}@{pulled.watermark}", pulled.sha, pulled.size,
                         watermark=(source.name, feed.name, pulled.watermark)) if pulled is not None else None
    if staged is None or (feed.name, staged.rel_name, staged.sha) in taken:
        return None  # nothing changed since the watermark (or the same rows as a pull already taken)
    _stage_content(stage, conn, staged, pulled.content, n)
    taken.add(staged)  # once checked: a pull quarantined whole is keyed by its name, as a file is
    if staged.temp_table is None:
        return staged
    # rows at the watermark are read again on every pull: drop the ones already taken unchanged
    same = " and ".join(f"r.{quote_ident(c)} is not distinct from t.{quote_ident(c)}" for c in feed.column_names)
    conn.execute(
        f"delete from {staged.temp_table} t where exists "
        f"(select 1 from raw.{feed.name} r where r._file like ? and {same})",
        [rel_name + "@%"],
    )
    staged.rows_read, staged.rows_bad = conn.execute(
        f"select count(*), count(*) filter (where _reason is not null) from {staged.temp_table}"
    ).fetchone()
    if staged.rows_read == 0:
        conn.execute(f"drop table {staged.temp_table}")
        return None
    return staged
def _record_quarantine(conn, staged: _StagedFile, file_seq: int | None, run_id: str, now: datetime) -> None:
    """Record a file's bad rows (or the file itself). What an earlier rejected run recorded for the
    same file name is replaced: a rejected run takes no file, so the next attempt reads it again,
    and each bad row (or file) is listed once, by its latest attempt."""
    conn.execute("delete from quarantine.files where file_name = ? and run_id in "
                 "(select run_id from audit.ingest_runs where status = 'rejected')", [staged.rel_name])
    conn.execute(f"delete from quarantine.{staged.feed.name} where _file = ? and _file_seq is null",
                 [staged.rel_name])
    if staged.temp_table is None:
        conn.execute(
            "insert into quarantine.files values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, staged.feed.name, staged.rel_name, staged.sha, staged.bad_reason, staged.bad_detail, now],
        )
        return
    # a bad row's personal data is withheld (whether a value was there stays visible): raw alone keeps it.
    # In a row with more or fewer fields than the header the values have shifted, so any of them may be
    # personal data: in a feed that has some, such a row keeps only its key (sources.md "Personal data").
    def withheld(name: str) -> str:
        return f"case when nullif(trim({quote_ident(name)}), '') is null then {quote_ident(name)} else '{PERSONAL_WITHHELD}' end"

    feed = staged.feed
    has_personal = any(c.personal for c in feed.columns)
    cols = ", ".join(
        withheld(c.name) if c.personal else
        f"case when _extra_fields or _short_fields then {withheld(c.name)} else {quote_ident(c.name)} end"
        if has_personal and c.name not in feed.key else quote_ident(c.name) for c in feed.columns)
    conn.execute(
        f"insert into quarantine.{staged.feed.name} select {cols}, ?, _line, ?, ?, ?, _reason "
        f"from {staged.temp_table} where _reason is not null order by _line",
        [staged.rel_name, file_seq, run_id, now],
    )


def _commit_file(conn, staged: _StagedFile, run_id: str, stats: FeedStats) -> None:
    """Record one file: its good rows, bad rows and manifest row in one transaction."""
    feed = staged.feed
    now = datetime.now(timezone.utc)
    conn.execute("begin transaction")
    try:
        file_seq = conn.execute("select coalesce(max(file_seq), 0) + 1 from audit.manifest").fetchone()[0]
        _record_quarantine(conn, staged, file_seq, run_id, now)
        loaded = updated = 0
        if staged.temp_table is not None:
            cols = ", ".join(quote_ident(c) for c in feed.column_names)
            updated = _count_updates(conn, feed, staged.temp_table)
            # no `order by _line`: the staged table is in line order and DuckDB keeps insertion
            # order by default; a sort of every file cost time at 20 million rows, and no rule reads
            # raw's physical order (the duplicate rule ranks by _file_seq and _line)
            conn.execute(
                f"insert into raw.{feed.name} select {cols}, ?, _line, ?, ?, ? from {staged.temp_table} "
                "where _reason is null",
                [staged.rel_name, file_seq, run_id, now],
            )
            loaded = staged.rows_read - staged.rows_bad
        if staged.watermark is not None:
            source, feed_name, mark = staged.watermark
            conn.execute("delete from audit.watermarks where source = ? and feed = ?", [source, feed_name])
            conn.execute("insert into audit.watermarks values (?, ?, ?, ?, ?)", [source, feed_name, mark, run_id, now])
        conn.execute(
            "insert into audit.manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [file_seq, run_id, feed.name, staged.rel_name, staged.size, staged.sha, staged.encoding,
             staged.rows_read, loaded, staged.rows_bad,
             "loaded" if staged.temp_table is not None else "quarantined", staged.bad_reason, now],
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    stats.files_taken += staged.temp_table is not None
    stats.files_quarantined += staged.temp_table is None
    if staged.temp_table is None:
        stats.bad_files.append(f"{staged.rel_name} ({staged.bad_reason}: {staged.bad_detail})")
    stats.rows_read += staged.rows_read
    stats.rows_loaded += loaded
    stats.rows_updated += updated
    stats.rows_quarantined += staged.rows_bad


def _count_updates(conn, feed: Feed, temp_table: str) -> int:
    """The file's good rows that update a key (sources.md: "the same key seen again is an update"):
    its key is in raw already or on an earlier line of the file, and the row is not identical to a
    version seen before ("identical re-deliveries change nothing"). Raw is probed only with the keys
    it holds (an inner join), so a file of new keys costs one hash join."""
    key = ", ".join(quote_ident(k) for k in feed.key)
    cols = ", ".join(quote_ident(c) for c in feed.column_names)
    key_match = " and ".join(f"k.{quote_ident(k)} = g.{quote_ident(k)}" for k in feed.key)
    same = " and ".join(f"k.{quote_ident(c)} is not distinct from g.{quote_ident(c)}" for c in feed.column_names)
    return conn.execute(f"""
        with g as (
            select {cols}, _line,
                   row_number() over (partition by {key} order by _line) as nth_of_key,
                   row_number() over (partition by {cols} order by _line) as nth_identical
            from {temp_table} where _reason is null
        ),
        in_raw as (
            select g._line, bool_or({same}) as identical
            from g join raw.{quote_ident(feed.name)} as k on {key_match}
            group by g._line
        )
        select count(*) from g left join in_raw as r on g._line = r._line
        where (g.nth_of_key > 1 or r._line is not null) and g.nth_identical = 1 and not coalesce(r.identical, false)
    """).fetchone()[0]


def _outside(path: Path, inbox: Path) -> str | None:
    """Where `path` really is, if that is outside the inbox (a symlink, or a linked folder)."""
    real = path.resolve()
    return None if real.is_relative_to(inbox.resolve()) else str(real)


def _list_files(inbox: Path, feed: Feed) -> list[Path]:
    folder = inbox / feed.name
    if not folder.is_dir():
        return []  # an absent feed is allowed: its measures are null
    try:
        # byte order of names decides which file is "taken later" within one run
        return sorted((p for p in folder.iterdir() if p.is_file() and readers.is_candidate(p)),
                      key=lambda p: os.fsencode(p.name))  # the name's bytes, UTF-8 or not
    except PermissionError:
        raise InputError(f"inbox folder {folder} is not readable") from None


def ingest_inbox(conn, inbox: Path, run_id: str, reject_threshold: float = REJECT_THRESHOLD, sql_source=None) -> IngestResult:
    """Take every new file of every feed folder in `inbox`.

    With `sql_source`, the feeds it serves are also pulled from the database (after that
    feed's files), incrementally by watermark. Files are first read and checked into temp
    tables; only when no feed's share of bad rows exceeds the reject threshold are they
    recorded (each file in one transaction with its manifest row). A rejected run records its quarantined rows and stats but takes no file,
    so a retry fails the same way until the bad file is fixed or removed.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise InputError(f"inbox {inbox} is not a readable folder")
    ensure_schema(conn)
    # the contract checks are DuckDB SQL: on a PostgreSQL warehouse they run in memory
    stage = conn if isinstance(conn, duckdb.DuckDBPyConnection) else duckdb.connect()
    try:
        if sql_source is not None:
            sql_source.connection = sql_source.connect()
            try:
                return _ingest(stage, conn, inbox, run_id, reject_threshold, sql_source)
            finally:
                sql_source.connection.close()
        return _ingest(stage, conn, inbox, run_id, reject_threshold, None)
    finally:
        if stage is not conn:
            stage.close()


class _Taken:
    """What was taken already (sources.md: "a file is ingested once"). Content loaded into a feed is
    taken once under any name. A file quarantined whole is taken once under its own name: every empty
    file has the same checksum, and a broken file dropped again under a new name is reported again."""

    def __init__(self, conn):
        self.keys = set()
        for feed, name, sha, status in conn.execute(
                "select feed, file_name, sha256, status from audit.manifest").fetchall():
            self.keys.add((feed, sha) if status == "loaded" else (feed, name, sha))

    def __contains__(self, file: tuple[str, str, str]) -> bool:
        feed, name, sha = file
        return (feed, sha) in self.keys or file in self.keys

    def add(self, staged: _StagedFile) -> None:
        feed = staged.feed.name
        self.keys.add((feed, staged.sha) if staged.bad_reason is None else (feed, staged.rel_name, staged.sha))


def _ingest(stage, conn, inbox: Path, run_id: str, reject_threshold: float, sql_source) -> IngestResult:
    taken = _Taken(conn)
    result = IngestResult(run_id, unknown_folders=unknown_folders(inbox))
    staged: list[_StagedFile] = []
    for feed in FEEDS.values():
        stats = result.feeds[feed.name] = FeedStats(feed.name)
        for path in _list_files(inbox, feed):
            stats.files_seen += 1
            rel_name = f"{feed.name}/{readers.display_name(path.name)}"
            escaped = _outside(path, inbox)
            if escaped is not None:
                # a link out of the inbox is never opened (it could point at any file the run can read)
                sha = hashlib.sha256(f"outside_inbox:{rel_name}:{escaped}".encode()).hexdigest()
                if (feed.name, rel_name, sha) in taken:
                    stats.files_skipped += 1
                    continue
                staged.append(_StagedFile(feed, rel_name, sha, 0, bad_reason="outside_inbox",
                                          bad_detail=f"resolves to {escaped}, outside the inbox"))
                taken.add(staged[-1])
                continue
            try:
                sha = _sha256(path)
            except PermissionError:
                raise InputError(f"inbox file {path} is not readable") from None
            if not readers.is_supported(path):
                # recorded under its name too: the same bytes renamed to a format we read are taken then
                sha = hashlib.sha256(f"unsupported_format:{rel_name}:{sha}".encode()).hexdigest()
            if (feed.name, rel_name, sha) in taken:
                stats.files_skipped += 1  # the same content under any name is taken once
                continue
            staged.append(_stage_file(stage, conn, feed, path, rel_name, sha, len(staged)))
            taken.add(staged[-1])
        if sql_source is not None and feed.name in sql_source.tables:
            pulled = _stage_sql(stage, conn, sql_source, feed, len(staged), taken)
            if pulled is not None:
                stats.files_seen += 1
                staged.append(pulled)

    read = {f: sum(s.rows_read for s in staged if s.feed.name == f) for f in FEEDS}
    bad = {f: sum(s.rows_bad for s in staged if s.feed.name == f) for f in FEEDS}
    over = [f for f in FEEDS if read[f] and bad[f] / read[f] > reject_threshold]
    now = datetime.now(timezone.utc)
    try:
        if over:
            conn.execute("begin transaction")
            for s in staged:
                _record_quarantine(conn, s, None, run_id, now)
                result.feeds[s.feed.name].rows_read += s.rows_read
                result.feeds[s.feed.name].rows_quarantined += s.rows_bad
            _record_run(conn, result, now, status="rejected")
            conn.execute("commit")
            f = over[0]
            raise RejectThresholdExceeded(
                f"{bad[f]} of {read[f]} {f} rows ({bad[f] / read[f]:.1%}) were quarantined, over the "
                f"{reject_threshold:.0%} reject threshold; no file of this run was taken and nothing was published",
                details=f"select * from quarantine.{f} where _run_id = '{run_id}'",
            )
        for s in staged:
            _commit_file(conn, s, run_id, result.feeds[s.feed.name])
        _record_run(conn, result, datetime.now(timezone.utc), status="loaded")
    finally:
        for s in staged:
            if s.temp_table:
                conn.execute(f"drop table if exists {s.temp_table}")
    return result


def _record_run(conn, result: IngestResult, now: datetime, status: str) -> None:
    for s in result.feeds.values():
        conn.execute(
            "insert into audit.ingest_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [result.run_id, s.feed, status, s.files_seen, s.files_taken, s.files_skipped, s.files_quarantined,
             s.rows_read, s.rows_loaded, s.rows_updated, s.rows_quarantined, now],
        )
