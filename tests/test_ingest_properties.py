"""Properties of ingest (no dbt) under generated input, sources.md 'Bad input':
no good row is ever lost, none is taken twice, no row is invented, and no input makes the
loader raise (with reject_threshold=1.0 nothing is a reason to stop).

Each example gets a fresh inbox and DuckDB file in its own temporary directory.
"""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyaccounts.ingest.contract import FEEDS, ORDER_STATUSES
from keyaccounts.ingest.loader import ingest_inbox

ORDER_COLUMNS = FEEDS["orders"].column_names
HEADER_LINE = ",".join(ORDER_COLUMNS) + "\n"
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


@contextmanager
def ingested(files: dict[str, bytes], runs: int = 1):
    """Write `files` (relative name -> bytes) into a fresh inbox, ingest it `runs` times and
    yield (connection, [IngestResult per run])."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inbox = root / "inbox"
        for rel, data in files.items():
            path = inbox / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        inbox.mkdir(exist_ok=True)
        conn = duckdb.connect(str(root / "wh.duckdb"))
        try:
            results = [ingest_inbox(conn, inbox, f"run-{i + 1}", reject_threshold=1.0) for i in range(runs)]
            yield conn, results
        finally:
            conn.close()


def fetch(conn, sql: str, params=None) -> list[tuple]:
    return conn.execute(sql, params or []).fetchall()


def raw_rows(conn, table: str = "raw.orders", extra: str = "") -> list[tuple]:
    cols = ", ".join(ORDER_COLUMNS)
    return fetch(conn, f"select {cols}{extra} from {table} order by _file_seq, _line")


# --------------------------------------------------------------------------- valid values

# Text: anything but surrogates and NUL (a NUL marks a file as binary), so commas, quotes,
# line breaks, control characters, Chinese, emoji and odd white space all occur.
TEXT_CHARS = st.one_of(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    st.sampled_from(list(',"\'\n\r ;|=华东重工集团蓝海科技')),
)
text = st.text(TEXT_CHARS, min_size=1, max_size=12)
# a required text value must not be blank
required_text = text.filter(lambda s: s.strip() != "")


def utf8_bytes(text: str, bom: bool) -> bytes:
    """docs/ingest.md: without a BOM, a short file whose only non-ASCII characters take two bytes in
    UTF-8 may be GBK (医院 is valid UTF-8 too), and is read as GB18030 when it looks like it; such a
    file says it is UTF-8 with a BOM. Every other UTF-8 file is read as written, with or without one."""
    two_byte_only = any(0x80 <= ord(c) < 0x800 for c in text) and not any(ord(c) >= 0x800 for c in text)
    return text.encode("utf-8-sig" if bom or two_byte_only else "utf-8")


dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat)


@st.composite
def timestamps(draw) -> str:
    """ISO 8601 as the contract allows it: a date, or a date and time, with or without an offset."""
    moment = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)))
    day = moment.date().isoformat()
    form = draw(st.sampled_from(["date", "minutes", "seconds", "fraction"]))
    if form == "date":
        return day
    sep = draw(st.sampled_from(["T", " "]))
    clock = moment.strftime("%H:%M")
    if form in ("seconds", "fraction"):
        clock += moment.strftime(":%S")
    if form == "fraction":
        clock += "." + str(moment.microsecond).rjust(6, "0")[: draw(st.integers(1, 6))]
    # HH:MM followed by an offset is valid ISO 8601 too, but DuckDB cannot cast it: see
    # test_minute_precision_timestamp_with_offset_is_a_good_row
    if form != "minutes":
        offset = draw(st.one_of(st.none(), st.just("Z"), st.integers(-12 * 60, 14 * 60).map(_offset_text(draw))))
        clock += offset or ""
    return f"{day}{sep}{clock}"


def _offset_text(draw):
    style = draw(st.sampled_from(["+hh:mm", "+hhmm", "+hh"]))

    def fmt(minutes: int) -> str:
        sign = "+" if minutes >= 0 else "-"
        hours, mins = divmod(abs(minutes) if style != "+hh" else abs(minutes) // 60 * 60, 60)
        return {"+hh:mm": f"{sign}{hours:02d}:{mins:02d}", "+hhmm": f"{sign}{hours:02d}{mins:02d}",
                "+hh": f"{sign}{hours:02d}"}[style]

    return fmt


@st.composite
def amounts(draw) -> str:
    """Decimals >= 0 in every form the contract's number format allows: 12, 12.5, 12., .5, +3, 007,
    below the contract's MAX_AMOUNT (10^15; above it a row is out_of_range, tests/test_ingest.py)."""
    whole = draw(st.integers(0, 10**15 - 1))
    digits = draw(st.integers(0, 10))
    frac = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
    form = draw(st.sampled_from(["int", "dec", "trailing_dot", "leading_dot", "plus", "zeros"]))
    if form == "int":
        return str(whole)
    if form == "dec":
        return f"{whole}.{frac or '0'}"
    if form == "trailing_dot":
        return f"{whole}."
    if form == "leading_dot":
        return f".{frac or '5'}"
    if form == "plus":
        return f"+{whole}"
    return f"00{whole}"


currencies = st.one_of(st.none(), st.sampled_from(["CNY", "USD", "EUR", "JPY", "HKD"]))


def order_rows(min_size: int = 1, max_size: int = 12):
    row = st.fixed_dictionaries({
        "order_id": required_text,
        "customer_id": required_text,
        "contract_id": st.one_of(st.none(), text),
        "order_date": dates,
        "status": st.sampled_from(ORDER_STATUSES),
        "currency": currencies,
        "list_amount": amounts(),
        "net_amount": amounts(),
        "cost_amount": st.one_of(st.none(), amounts()),
        "updated_at": timestamps(),
    })
    return st.lists(row, min_size=min_size, max_size=max_size, unique_by=lambda r: r["order_id"])


def as_tuple(row: dict) -> tuple:
    return tuple(row[c] for c in ORDER_COLUMNS)


def csv_text(rows: list[dict], columns: list[str] = ORDER_COLUMNS, quote_all: bool = False,
             eol: str = "\n") -> str:
    """RFC 4180 CSV: a field with a comma, quote or line break is quoted, quotes doubled."""
    def field(value: str | None) -> str:
        value = "" if value is None else value
        if quote_all or any(c in value for c in ',"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [",".join(columns)] + [",".join(field(r[c]) for c in columns) for r in rows]
    return "".join(line + eol for line in lines)


# --------------------------------------------------------------------------- 1. arbitrary bytes


@st.composite
def mangled_csv(draw) -> bytes:
    """A valid orders CSV with a few bytes replaced, inserted or deleted."""
    data = bytearray(csv_text(draw(order_rows(max_size=4))).encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        byte = draw(st.integers(0, 255))
        if action == "insert" or pos == len(data):
            data.insert(pos, byte)
        elif action == "replace":
            data[pos] = byte
        else:
            del data[pos]
    return bytes(data)


ANY_BYTES = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=300).map(lambda b: HEADER_LINE.encode() + b),
    st.binary(max_size=300).map(lambda b: b"\xef\xbb\xbf" + HEADER_LINE.encode() + b),
    mangled_csv(),
)


@settings(max_examples=120, **SETTINGS)
@given(data=ANY_BYTES)
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
@example(data=b"\x00")
@example(data=b'"')
@example(data=b"\r\r\n\n")
@example(data=HEADER_LINE.encode())
@example(data=HEADER_LINE.encode() + b'O1,K1,"never closed,2024-01-01,open,CNY,1,1,1,2024-01-01\n')
@example(data=HEADER_LINE.encode() + b"O1,K1," + b"x" * 5000 + b"\x00,2024-01-01,open,CNY,1,1,1,2024-01-01\n")
@example(data=HEADER_LINE.encode() + "O1,K1,华东,2024-01-01,open,CNY,1,1,1,2024-01-01\n".encode("gb18030"))
@example(data=gzip.compress(HEADER_LINE.encode()))
def test_arbitrary_bytes_never_raise_and_either_load_or_quarantine_the_file(data):
    """Whatever bytes arrive as orders/x.csv, ingest does not raise: the file is either taken
    (each of its rows loaded or quarantined, none both) or quarantined whole with a reason."""
    with ingested({"orders/x.csv": data}) as (conn, [result]):
        manifest = fetch(conn, "select status, reason, rows_read, rows_loaded, rows_quarantined from audit.manifest")
        assert len(manifest) == 1
        status, reason, read, loaded, bad = manifest[0]
        n_raw = fetch(conn, "select count(*) from raw.orders")[0][0]
        n_bad = fetch(conn, "select count(*) from quarantine.orders")[0][0]
        files = fetch(conn, "select file_name, reason from quarantine.files")
        if status == "quarantined":
            assert files == [("orders/x.csv", reason)]
            assert reason in {"missing_columns", "undecodable", "unreadable", "empty", "duplicate_columns"}
            assert (n_raw, n_bad) == (0, 0)
        else:
            assert status == "loaded" and files == []
            assert (n_raw, n_bad) == (loaded, bad) and read == loaded + bad
            lines_ok = {r[0] for r in fetch(conn, "select _line from raw.orders")}
            lines_bad = {r[0] for r in fetch(conn, "select _line from quarantine.orders")}
            assert not lines_ok & lines_bad
            assert fetch(conn, "select count(*) from quarantine.orders where _reason is null") == [(0,)]
        stats = result.feeds["orders"]
        assert (stats.files_seen, stats.files_taken + stats.files_quarantined) == (1, 1)


# --------------------------------------------------------------------------- 2. truncation


def check_prefix_rows(conn, original: list[dict], cut_text: str) -> None:
    """Rows in raw are the original rows in order; only the record the cut falls in may be
    loaded shortened (its last value a prefix of the original one: a cut inside the last
    value can leave a value that is still valid, e.g. '2024-05-02T08:00:00+08:00' ->
    '2024-05-02'). No row is both loaded and quarantined."""
    loaded = fetch(conn, f"select {', '.join(ORDER_COLUMNS)}, _line from raw.orders order by _line")
    quarantined = fetch(conn, "select _line from quarantine.orders")
    assert not {r[-1] for r in loaded} & {r[0] for r in quarantined}
    assert len(loaded) <= len(original)
    for i, got in enumerate(loaded):
        want = as_tuple(original[i])
        got = got[:-1]
        if got == want:
            continue
        # only the last record of the cut file may differ, and only by being cut short
        assert i == len(loaded) - 1, (got, want)
        k = next(j for j in range(len(want)) if got[j] != want[j])
        assert got[k] is not None and want[k] is not None and want[k].startswith(got[k]), (got, want)
        assert all(v is None for v in got[k + 1:]), (got, want)
        assert not cut_text.endswith("\n")


def complete_rows(original: list[dict], cut_chars: int, eol: str) -> int:
    """How many original records end (with their line break) within the first cut_chars characters."""
    header_len = len(csv_text([], eol=eol))
    pos, n = header_len, 0
    for row in original:
        pos += len(csv_text([row], eol=eol)) - header_len
        if pos > cut_chars:
            break
        n += 1
    return n


@settings(max_examples=80, **SETTINGS)
@given(original=order_rows(max_size=5), eol=st.sampled_from(["\n", "\r\n"]), where=st.floats(0, 1))
def test_truncated_csv_never_raises_and_loads_only_prefix_rows(original, eol, where):
    """A file cut short (an upload interrupted, at any character) never raises; what loads are
    the rows before the cut, unchanged and each once; nothing after the cut is invented."""
    text = csv_text(original, eol=eol)
    cut = round(where * len(text))
    cut_text = text[:cut]
    with ingested({"orders/x.csv": utf8_bytes(cut_text, bom=False)}) as (conn, [result]):
        check_prefix_rows(conn, original, cut_text)
        stats = result.feeds["orders"]
        header_len = len(csv_text([], eol=eol)) - len(eol)
        # a cut inside a quoted field leaves a quote never closed: not a CSV that can be read as a
        # whole (sources.md 'Bad input'), so the file is quarantined rather than its last value cut short
        if cut_text.count('"') % 2:
            assert (stats.files_quarantined, stats.rows_read) == (1, 0)
            assert fetch(conn, "select reason from quarantine.files") == [("unreadable",)]
        elif cut >= header_len:
            # the header is whole: the file is taken and every whole record before the cut loads
            assert stats.files_taken == 1
            n = complete_rows(original, cut, eol)
            assert raw_rows(conn)[:n] == [as_tuple(r) for r in original[:n]]
            assert stats.rows_read == stats.rows_loaded + stats.rows_quarantined
        else:
            assert stats.files_quarantined == 1
            assert fetch(conn, "select count(*) from raw.orders") == [(0,)]


# A UTF-8 orders file with Chinese text in every row: cut inside a character, the bytes are no
# longer UTF-8.
CHINESE_ROWS = [
    dict(order_id=f"O{i}", customer_id="K1", contract_id=name, order_date="2024-03-15", status="completed",
         currency="CNY", list_amount="1100", net_amount="1000", cost_amount="700", updated_at="2024-05-02")
    for i, name in enumerate(["华东重工集团合同", "蓝海科技框架协议", "西部能源", "华南精密制造"], start=1)
]
CHINESE_CSV = csv_text(CHINESE_ROWS).encode("utf-8")
MID_CHARACTER = [i for i in range(len(CHINESE_CSV)) if (CHINESE_CSV[i] & 0xC0) == 0x80]


@settings(max_examples=30, **SETTINGS)
@given(cut=st.sampled_from(MID_CHARACTER))
@example(cut=CHINESE_CSV.index("西部".encode()) + 2)  # 2 of the 3 bytes of 西
def test_csv_truncated_inside_a_character_loads_no_changed_row(cut):
    """A UTF-8 file cut inside a multi-byte character is not text of any one encoding: either it
    is quarantined (undecodable) or what loads are the original rows. Today the loader decodes the
    whole file as GB18030 instead and every Chinese value in raw is mojibake
    ('华东重工集团合同' -> '鍗庝笢閲嶅伐闆嗗洟鍚堝悓')."""
    data = CHINESE_CSV[:cut]
    with ingested({"orders/x.csv": data}) as (conn, _):
        if fetch(conn, "select count(*) from quarantine.files") == [(1,)]:
            return
        check_prefix_rows(conn, CHINESE_ROWS, data.decode("utf-8", errors="ignore"))


# --------------------------------------------------------------------------- 3. shuffled and split


@st.composite
def split_inbox(draw):
    """Valid rows, shuffled, split across 1-4 files; each file with its own column order,
    encoding (UTF-8 with or without BOM, or gzip), line ends and quoting."""
    rows = draw(order_rows(min_size=1, max_size=15))
    shuffled = draw(st.permutations(rows))
    n_files = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, len(shuffled)), min_size=n_files - 1, max_size=n_files - 1)))
    bounds = [0, *cuts, len(shuffled)]
    files = {}
    for i in range(n_files):
        part = shuffled[bounds[i]:bounds[i + 1]]
        if not part:
            continue  # header-only files would be identical content, taken once: nothing to prove
        columns = draw(st.permutations(ORDER_COLUMNS))
        text = csv_text(part, columns, quote_all=draw(st.booleans()), eol=draw(st.sampled_from(["\n", "\r\n"])))
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gzip"]))
        if encoding == "gzip":
            files[f"orders/part-{i:02d}.csv.gz"] = gzip.compress(utf8_bytes(text, bom=False))
        else:
            files[f"orders/part-{i:02d}.csv"] = utf8_bytes(text, bom=encoding == "utf-8-sig")
    return rows, files



@settings(max_examples=60, **SETTINGS)
@given(case=split_inbox())
def test_shuffled_rows_split_across_files_load_exactly_once(case):
    """sources.md 'Two kinds of source' / 'Bad input': files arrive in any order and any split;
    every good row lands in raw exactly once with its values as written; a second run on the
    same inbox takes nothing."""
    rows, files = case
    with ingested(files, runs=2) as (conn, (first, second)):
        assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
        assert fetch(conn, "select order_id, _reason from quarantine.orders") == []
        assert Counter(raw_rows(conn)) == Counter(as_tuple(r) for r in rows)
        assert first.feeds["orders"].rows_loaded == len(rows)
        assert first.feeds["orders"].files_taken == len(files)
        # the second run finds every file already taken
        s = second.feeds["orders"]
        assert (s.files_seen, s.files_skipped, s.files_taken, s.rows_read) == (len(files), len(files), 0, 0)
        assert fetch(conn, "select count(*) from raw.orders") == [(len(rows),)]
        assert fetch(conn, "select count(*) from audit.manifest") == [(len(files),)]


# --------------------------------------------------------------------------- timestamps the contract allows


@settings(max_examples=20, **SETTINGS)
@given(moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31)),
       offset=st.sampled_from(["Z", "+08:00", "+0800", "+08", "-05:00"]))
@example(moment=datetime(2024, 5, 2, 8, 0), offset="+08:00")
def test_minute_precision_timestamp_with_offset_is_a_good_row(moment, offset):
    """sources.md 'Columns': timestamps are ISO 8601 with an offset or local time. ISO 8601 allows
    a time of day to minute precision ('2024-05-02T08:00+08:00'), and the loader's own pattern
    accepts it, yet the row is quarantined."""
    value = moment.strftime("%Y-%m-%dT%H:%M") + offset
    assert datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None  # valid ISO 8601
    row = dict(order_id="O1", customer_id="K1", contract_id=None, order_date="2024-03-15", status="open",
               currency="CNY", list_amount="1", net_amount="1", cost_amount=None, updated_at=value)
    with ingested({"orders/x.csv": csv_text([row]).encode()}) as (conn, _):
        assert fetch(conn, "select _reason from quarantine.orders") == []
        assert raw_rows(conn) == [as_tuple(row)]


# --------------------------------------------------------------------------- decimal text
@settings(max_examples=300, **SETTINGS)
@given(sign=st.sampled_from(["", "-", "+"]), whole=st.integers(min_value=0, max_value=10**31),
       fraction=st.text(alphabet="0123456789", max_size=12))
@example(sign="", whole=9999999999, fraction="999999995")  # rounds past decimal(18, 8)
@example(sign="-", whole=0, fraction="000000005")
def test_decimal_check_reads_text_as_decimal_38_8_rounded_half_away_from_zero(sign, whole, fraction):
    """The ingest's text -> decimal(38, 8) (narrow cast first, for speed) against Python's
    decimal: half away from zero to 8 places, NULL when 30 integer digits do not hold it."""
    from decimal import ROUND_HALF_UP, Decimal, localcontext

    from keyaccounts.ingest.loader import _decimal

    text = f"{sign}{whole}" + (f".{fraction}" if fraction else "")
    with localcontext() as ctx:
        ctx.prec = 60
        expected = Decimal(text).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)
    if abs(expected) >= Decimal(10) ** 30:
        expected = None
    got = duckdb.connect().execute(f"select {_decimal('v')} from (select ?::varchar as v) as t", [text]).fetchone()[0]
    assert got == expected
