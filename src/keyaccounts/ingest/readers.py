"""File readers: every format becomes header + rows of text with their source line.

One reader per format, chosen by file name; each returns a `FileContent` of strings so
that validation (contract.py / loader.py) is the same whatever the format. A file that
cannot be read as a whole raises `UnreadableFile` with a reason code of
`contract.FILE_REASONS`.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Files still being written are left for the next run.
PARTIAL_SUFFIXES = (".tmp", ".part")
# matched on the lower-cased name (`ORDERS.CSV` is a CSV); any other file is `unsupported_format`
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl", ".json")
# the default (131072 characters) makes a file with one long survey comment unreadable
csv.field_size_limit(2**31 - 1)


class UnreadableFile(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class FileContent:
    header: list[str]
    rows: list[list[str | None]]  # aligned with header
    lines: list[int]  # 1-based source line (CSV, JSONL: the line a record starts on; else row number)
    encoding: str | None = None
    extra_fields: list[bool] | None = None  # CSV: the record had more fields than the header
    short_fields: list[bool] | None = None  # CSV: the record had fewer fields than the header
    # Parquet: no rows in Python; the loader scans the file in DuckDB (`scan_parquet`), so a
    # file of millions of rows costs no Python objects per value
    parquet: Path | None = None
    columns: dict[str, str] | None = None  # header name (normalised) -> the file's own column name
    types: dict[str, pa.DataType] | None = None  # Parquet: header name (normalised) -> its Arrow type


def is_candidate(path: Path) -> bool:
    """Every file of a feed folder is taken (read, or quarantined as `unsupported_format`) but
    hidden files and files still being written."""
    name = path.name.lower()
    return not (name.startswith(".") or name.endswith(PARTIAL_SUFFIXES))


def _header(names: list[str], where: str = "the header") -> list[str]:
    """Column names as the contract spells them (` CUSTOMER_ID` -> `customer_id`). Two columns
    with the same name leave no way to tell which one holds the value: the file is refused.
    Unnamed columns (a trailing comma in an Excel export) match nothing and may repeat."""
    header = [n.strip().lower() for n in names]
    twice = sorted(n for n, k in Counter(header).items() if n and k > 1)
    if twice:
        raise UnreadableFile("duplicate_columns", f"{where} names column(s) more than once "
                                                  f"(case and spaces ignored): {', '.join(twice)}")
    return header


# Unicode blocks of the two-byte UTF-8 range (U+0080..U+07FF), for _gbk_in_utf8: Latin (Latin-1 and
# Latin Extended: Łódź is one script), IPA, spacing modifiers, combining marks, Greek, Cyrillic,
# Armenian, Hebrew, Arabic, Syriac and the rest
_TWO_BYTE_BLOCKS = (0x0250, 0x02B0, 0x0300, 0x0370, 0x0400, 0x0530, 0x0590, 0x0600, 0x0700)
_TWO_BYTE_RUN = re.compile("[\u0080-\u07ff]{2,}")
# Latin-1 punctuation and symbols (« » ° ½ ×): they stand beside words, not inside them
_SYMBOLS = frozenset(map(chr, [*range(0xA0, 0xC0), 0xD7, 0xF7]))
_QUOTES = frozenset("«»")
# letters no name or word of today's text is written in: IPA extensions and spacing modifiers (U+0250..
# U+02FF; but Azerbaijani's ə), historic Cyrillic (U+0460..U+048F) and the Cyrillic supplement's
# letters of a few small languages (U+0500..U+052F)
_NO_WORDS = ((0x0250, 0x0300), (0x0460, 0x0490), (0x0500, 0x0530))


def _garbled_run(text: str, start: int, end: int) -> bool:
    """Whether a run of two-byte characters reads like GBK bytes taken as UTF-8 rather than a word:
    a C1 control (never in text), symbols alone unless a number stands beside them (卢梅 -> ¬÷, but
    25°±2), a symbol between letters, letters of unrelated scripts (医院 -> ҽԺ), or a word of
    accented Latin letters only (陆平 -> ½ƽ, 钱强 -> Ǯǿ; real words hold plain letters beside their
    accented ones: Łódź, Müller). Symbols at the ends are trimmed first: «Газпром» is one word."""
    if any(ch < "\u00a0" or unicodedata.category(ch) in ("Cn", "Cf") for ch in text[start:end]):
        return True  # a C1 control, a format mark or a code point Unicode has not assigned
    around = text[start - 1:start] + text[end:end + 1]
    run_start, run_end = start, end
    while start < end and text[start] in _SYMBOLS:
        start += 1
    while end > start and text[end - 1] in _SYMBOLS:
        end -= 1
    core = text[start:end]
    if not core:
        return not any(ch.isascii() and ch.isdigit() for ch in around)
    if any(ch in _SYMBOLS for ch in core):
        return True
    if any(lo <= ord(ch) < hi and ch not in "əƏ" for ch in core for lo, hi in _NO_WORDS):
        return True  # IPA and spacing modifiers (施梅 -> ʩ÷, 陆盛 -> ½ʢ), historic Cyrillic (癣雪 -> Ѣѩ)
    # Azerbaijani's ə (an IPA code point) is a Latin letter: Təşkilat is one script
    if len({bisect.bisect(_TWO_BYTE_BLOCKS, 0x0100 if ch == "ə" else ord(ch)) for ch in core}) > 1:
        return True
    if "ς" in core[:-1] and core[core.index("ς") + 1].isalpha():
        return True  # Greek's final sigma ends a word (蟼尾 -> ςβ)
    if ord(max(core)) >= _TWO_BYTE_BLOCKS[0]:  # one non-Latin script: Газпром, Αθήνα
        # trimmed symbols other than quotes beside such a word (ςº, ۇ¿) are bytes, not punctuation
        trimmed = text[run_start:start] + text[end:run_end]
        return any(ch not in _QUOTES for ch in trimmed)
    beside = text[start - 1:start] + text[end:end + 1]
    return not any(ch.isascii() and ch.isalpha() for ch in beside)


def _gbk_in_utf8(data: bytes, text: str) -> bool:
    """Strictly valid UTF-8 that is GBK: when every Chinese character of a short GBK file has a lead
    byte C2..DF and a trail byte 80..BF (医院 is D2 BD D4 BA), its bytes are also valid two-byte UTF-8,
    and read so they give runs of characters no text holds (_garbled_run). So: no BOM, no three-byte
    character, most non-ASCII characters in such runs, and all of them Chinese when read as GB18030."""
    if data.startswith(b"\xef\xbb\xbf") or re.search(b"[\xe0-\xff]", data):
        return False
    runs = list(_TWO_BYTE_RUN.finditer(text))
    garbled = sum(m.end() - m.start() for m in runs if _garbled_run(text, m.start(), m.end()))
    if not garbled or 2 * garbled < sum(m.end() - m.start() for m in runs):
        return False
    try:
        chinese = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return all(0x3400 <= ord(ch) <= 0x9FFF for ch in chinese if ord(ch) >= 0x80)


def _decode(data: bytes) -> tuple[str, str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    else:
        return (data.decode("gb18030"), "gb18030") if _gbk_in_utf8(data, text) else (text, "utf-8-sig")
    # Mostly valid UTF-8 with a few bad sequences is a damaged (or mixed) UTF-8 file: read as
    # GB18030 it would decode "successfully" into garbage, so refuse it instead. 3-byte characters
    # (U+0800 and up: Chinese in UTF-8) are evidence of UTF-8; GBK byte pairs often form valid 2-byte
    # UTF-8 characters (小米 -> 'С' + ...), so those alone would refuse short GBK files.
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good3 = sum(1 for ch in lenient if ord(ch) >= 0x800 and ch != "\ufffd")
    # 2-byte characters (accented Latin, Cyrillic) count only when they clearly outnumber the faults:
    # GBK text forms some by accident, but far fewer than the invalid sequences it also forms
    good2 = sum(1 for ch in lenient if 0x80 <= ord(ch) < 0x800)
    if good3 > bad or (good2 >= 3 and good2 >= 3 * bad):
        raise UnreadableFile("undecodable", f"UTF-8 text with {bad} invalid byte sequence(s): damaged or mixed encodings")
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise UnreadableFile("undecodable", "bytes are neither UTF-8 nor GB18030 text") from None
    # GB18030 maps almost any byte pair to a character, Big5 or Shift-JIS text too, and some of their
    # pairs land in its user-defined areas (private use, U+E000..U+F8FF), which Chinese text never uses
    private = sum(1 for ch in text if "\ue000" <= ch <= "\uf8ff")
    if private:
        raise UnreadableFile("undecodable", f"read as GB18030 the bytes give {private} private-use character(s): "
                                            "another encoding (Big5? Shift-JIS?); save the file as UTF-8")
    return text, "gb18030"


UNCLOSED_QUOTE = "unexpected end of data"  # what strict mode says of a quote never closed


def read_csv_bytes(data: bytes) -> FileContent:
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise UnreadableFile("empty", "the file has no header row")
    if b"\x00" in data[:4096]:
        raise UnreadableFile("unreadable", "binary content, not a CSV file")
    text, encoding = _decode(data)
    # Strict first: in the default mode a quote that is never closed silently swallows the rest of
    # the file into one field, so that file is refused. Any other quoting fault (text after a
    # closing quote, `"x"y`) spoils one value only: the file is read again in the default mode,
    # which keeps that value as `xy`, and the row's checks decide.
    try:
        return _csv_content(text, encoding, strict=True)
    except csv.Error as exc:
        if str(exc) == UNCLOSED_QUOTE:
            start = getattr(exc, "record_start", 1)
            raise UnreadableFile("unreadable", f"CSV syntax error in the record starting on line {start}: "
                                               f"{exc} (a quote that is never closed)") from None
    # the lenient reading would not notice a quote never closed after the first fault: an odd number
    # of quote characters means one is open at the end
    if text.count('"') % 2:
        raise UnreadableFile("unreadable", "CSV quoting is broken: a quote that is never closed, after "
                                           "text following a closing quote (\"a\"b)")
    return _csv_content(text, encoding, strict=False)


def _csv_content(text: str, encoding: str, strict: bool) -> FileContent:
    reader = csv.reader(io.StringIO(text, newline=""), strict=strict)
    start = 1
    try:
        record = next(reader)
        while not any(v.strip() for v in record):  # blank lines (or only commas) above the header
            start = reader.line_num + 1
            record = next(reader)
        header = _header(record)
    except StopIteration:
        raise UnreadableFile("empty", "the file has no header row") from None
    except csv.Error as exc:
        exc.record_start = start
        raise
    rows: list[list[str | None]] = []
    lines: list[int] = []
    extra: list[bool] = []
    short: list[bool] = []
    start = reader.line_num + 1
    width = len(header)
    try:
        for record in reader:
            if not any(v.strip() for v in record):
                # a blank line, or a row of empty cells (Excel keeps `,,,,` for rows whose cells were
                # cleared): no value to load or to refuse
                start = reader.line_num + 1
                continue
            short.append(len(record) < width)
            if len(record) < width:
                record = record + [None] * (width - len(record))
            rows.append([(v if v != "" else None) for v in record[:width]])
            extra.append(len(record) > width and any(v.strip() for v in record[width:]))
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        exc.record_start = start
        raise
    return FileContent(header, rows, lines, encoding, extra, short)


class _Number(str):
    """A JSON number as written in the file: never through a float, so `1e-05` and a 17-digit
    amount reach raw as their own text (NaN and Infinity, which Python's json accepts, too)."""


class _Object(tuple):
    """A JSON object as its (key, value) pairs, so that a key given twice is seen, not dropped."""


def _nested_json(value) -> str:
    if isinstance(value, _Object):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_nested_json(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_nested_json(v) for v in value) + "]"
    return str(value) if isinstance(value, _Number) else json.dumps(value, ensure_ascii=False)


def _plain_number(text: str) -> str:
    """`1E+2` -> `100`, `1.50e-05` -> `0.0000150`: the same value, exactly (decimal arithmetic), without
    an exponent; a number already plain, and NaN or Infinity, stay as written."""
    if "e" not in text.lower() or not text.lstrip("-")[:1].isdigit():
        return text
    value = Decimal(text)
    if abs(value.adjusted()) > 40:  # no amount has that many digits: left as written (bad_number)
        return text
    return format(value, "f")


def _json_value_text(value) -> str | None:
    """A JSON value as the text a CSV cell would hold: strings as written, numbers exactly in plain
    notation (JSON writers put 1e-05 or 1E+2 for numbers a CSV cell holds as 0.00001 and 100), true
    and false as words, null as missing, an array or object as its JSON text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Number):
        # 9.0 is the integer 9 (JSON has one number type; pandas writes an integer column with a
        # blank as floats): as a CSV cell would hold it, so an integer column takes it
        text = _plain_number(value)
        whole = re.fullmatch(r"(-?[0-9]+)\.0+", text)
        return whole.group(1) if whole else text
    if isinstance(value, str):
        return str(value)
    return _nested_json(value)


def _json_source(data: bytes) -> str:
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise UnreadableFile("empty", "the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile("undecodable", f"JSON must be UTF-8: invalid byte at offset {exc.start}") from None


def _parse_json(text: str, first_line: int = 1):
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_float=_Number, parse_int=_Number,
                          parse_constant=_Number)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise UnreadableFile("unreadable", f"invalid JSON on line {line}: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise UnreadableFile("unreadable", f"JSON nested too deeply (from line {first_line})") from None


def _json_rows(items, unit: str) -> FileContent:
    """Rows from (number, JSON value) pairs, each an object; the header is the keys in the order
    first seen, a key absent from a record is missing there."""
    header: dict[str, None] = {}
    records: list[dict[str, str | None]] = []
    lines: list[int] = []
    try:
        for n, value in items:
            if not isinstance(value, _Object):
                raise UnreadableFile("unreadable", f"{unit} {n} is not a JSON object")
            names = _header([k for k, _ in value], f"{unit} {n}")
            records.append({name: _json_value_text(v) for name, (_, v) in zip(names, value)})
            header.update(dict.fromkeys(records[-1]))
            lines.append(n)
    except RecursionError:  # writing a nested value back as text takes more stack than parsing it
        raise UnreadableFile("unreadable", "JSON nested too deeply") from None
    names = list(header)
    return FileContent(names, [[r.get(c) for c in names] for r in records], lines, "utf-8-sig")


def read_jsonl_bytes(data: bytes) -> FileContent:
    """One JSON object a line (blank lines skipped); each row keeps its line number in the file."""
    text = _json_source(data)
    return _json_rows(((n, _parse_json(line, n)) for n, line in enumerate(text.split("\n"), 1) if line.strip()),
                      "line")


def read_json_bytes(data: bytes) -> FileContent:
    """A JSON array of objects, one row each, numbered from 1 (its elements have no line of their own)."""
    value = _parse_json(_json_source(data))
    if not isinstance(value, list):
        raise UnreadableFile("unreadable", "not a JSON array of objects")
    return _json_rows(enumerate(value, 1), "element")


def open_parquet(path: Path) -> FileContent:
    """Read a Parquet file's schema only (a file without a valid footer fails here). The names
    come from the file itself: DuckDB would rename a second `customer_id` to `customer_id_1`."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile("unreadable", str(exc).splitlines()[0]) from None
    header = _header(schema.names)
    columns = dict(zip(header, schema.names))
    return FileContent(list(columns), [], [], parquet=path, columns=columns, types=dict(zip(header, schema.types)))


def _parquet_text(column: str, arrow_type: pa.DataType | None, kind: str) -> str:
    """A typed Parquet value as the text a CSV cell would hold, so the contract checks read every
    format alike. pandas writes an integer column with a blank as float64 (10.0) and a date as a
    timestamp at midnight (2024-01-10 00:00:00): those become 10 and 2024-01-10. Anything else is
    DuckDB's own text of the value, checked like any cell (a date with a time of day stays bad_date).
    DuckDB writes a float below 1e-4 with an exponent (8.03e-05, a rate of the Lebanese pound): such a
    value is written out plainly (0.0000803), as a CSV cell holds it."""
    if arrow_type is not None and pa.types.is_floating(arrow_type):
        text = f"cast({column} as varchar)"
        return (f"case when isfinite({column}) and {column} = trunc({column}) and abs({column}) < 1e30 "
                f"then cast(cast({column} as hugeint) as varchar) "
                # the shortest text of the double, without its exponent: exact through a decimal
                f"when isfinite({column}) and abs({column}) between 1e-20 and 1 and contains({text}, 'e') "
                f"then rtrim(rtrim(cast(cast({text} as decimal(38, 30)) as varchar), '0'), '.') "
                f"else {text} end")
    if arrow_type is not None and kind == "date" and pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        return (f"case when {column} = date_trunc('day', {column}) then strftime({column}, '%Y-%m-%d') "
                f"else cast({column} as varchar) end")
    return f"cast({column} as varchar)"


def scan_parquet_sql(content: FileContent, kinds: dict[str, str]) -> tuple[str, list]:
    """SQL (and its parameter) giving the file's rows as the contract's text columns (`kinds`: each
    contract column's kind, in order), with `_line` (the row's number in the file, from 1) and
    `_extra_fields` and `_short_fields` (false): the same shape as the other readers, computed by DuckDB."""
    from keyaccounts.warehouse import quote_ident

    types = content.types or {}
    select = ", ".join(
        f"{_parquet_text(quote_ident(content.columns[c]), types.get(c), kind)} as {quote_ident(c)}"
        if c in content.columns else f"cast(null as varchar) as {quote_ident(c)}"
        for c, kind in kinds.items()
    )
    return (f"select {select}, file_row_number + 1 as _line, false as _extra_fields, false as _short_fields "
            f"from read_parquet(?, file_row_number = true)", [str(content.parquet)])


def is_supported(path: Path) -> bool:
    """A format we read, by its name in any case; any other file is `unsupported_format`."""
    return path.name.lower().endswith(SUPPORTED_SUFFIXES)


def display_name(name: str) -> str:
    """A file name as text. Names that are not UTF-8 (as Python gives them, with surrogates) are
    GB18030/GBK bytes, as in archives unzipped from a Chinese Windows: decoded as such, else with
    replacement characters. The file itself is still read by its real name."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")


def read_file(path: Path) -> FileContent:
    name = path.name.lower()
    if not is_supported(path):
        raise UnreadableFile("unsupported_format",
                             f"not a CSV, CSV.gz, Parquet, JSONL or JSON file: {display_name(path.name)}")
    if name.endswith(".parquet"):
        if display_name(path.name) != path.name:
            # DuckDB reads a Parquet file by its name, which must be UTF-8 text
            raise UnreadableFile("unreadable", "a Parquet file whose name is not UTF-8 (e.g. GBK) cannot be read: "
                                               f"rename {display_name(path.name)} and deliver it again")
        return open_parquet(path)
    data = path.read_bytes()
    if name.endswith(".jsonl"):
        return read_jsonl_bytes(data)
    if name.endswith(".json"):
        return read_json_bytes(data)
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UnreadableFile("unreadable", f"not a gzip file: {exc}") from None
    return read_csv_bytes(data)
