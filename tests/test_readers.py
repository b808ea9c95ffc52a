"""The file readers (ingest/readers.py) and file selection, against sources.md 'Two kinds of
source' and 'Bad input': GBK detection of short files, broken CSV quoting, long fields, JSONL and
JSON read as exact text, header names without case, and files of no supported format.

Reader-level tests check the decoded text; ingest-level tests check what lands in raw and
quarantine. Every expected value is written down by hand from the bytes the test writes.
"""

from __future__ import annotations

import csv
import gzip
import io
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keyaccounts.ingest.contract import FILE_REASONS
from keyaccounts.ingest.loader import ingest_inbox
from keyaccounts.ingest.readers import (
    UnreadableFile,
    is_candidate,
    read_csv_bytes,
    read_file,
    read_json_bytes,
    read_jsonl_bytes,
)

TS = "2024-05-02T08:00:00+08:00"
CUSTOMER_HEADER = ["customer_id", "customer_name", "industry", "scope", "region", "account_manager",
                   "signed_on", "updated_at"]
ORDER_HEADER = ["order_id", "customer_id", "order_date", "status", "list_amount", "net_amount", "updated_at"]


def customer_csv(records: list[list[str]], header: list[str] = CUSTOMER_HEADER) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    return buf.getvalue()


def customer(customer_id: str, name: str) -> list[str]:
    return [customer_id, name, "technology", "national", "North", "王敏", "2021-06-01", TS]


def fetch(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def unreadable(read, data: bytes) -> UnreadableFile:
    with pytest.raises(UnreadableFile) as caught:
        read(data)
    return caught.value


def write(inbox: Path, rel: str, data: bytes | str) -> None:
    path = inbox / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


# --------------------------------------------------------------------------- 1. GBK detection


@pytest.mark.parametrize("name", ["小米科技", "小米公司", "华为技术有限公司", "北京", "上海", "腾讯",
                                  # every byte pair valid two-byte UTF-8 too: 医院 = D2 BD D4 BA reads as ҽԺ
                                  "医院", "煤炭实业",
                                  # pairs that read as Latin letters and symbols: 陆平 = C2 BD C6 BD reads as ½ƽ
                                  "陆平", "钱强", "卢梅", "莫强", "鲁平", "欧陆",
                                  # IPA letters and symbols (施梅 -> ʩ÷, 陆盛 -> ½ʢ), a Greek final sigma
                                  # inside a word (蟼尾 -> ςβ), historic Cyrillic (癣雪 -> Ѣѩ)
                                  "施梅", "陆盛", "鲁司", "郑卓", "式潞", "蟼尾", "癣雪"])
def test_short_gbk_file_is_read_as_gb18030(name):
    """sources.md 'Two kinds of source': a Chinese Excel export (GBK) of one row is detected,
    even when its byte pairs happen to be valid two-byte UTF-8 (小米: D0 A1 = U+0421)."""
    content = read_csv_bytes(f"customer_id,customer_name\r\nK1,{name}\r\n".encode("gbk"))
    assert content.encoding == "gb18030"
    assert (content.header, content.rows, content.lines) == (["customer_id", "customer_name"], [["K1", name]], [2])


@pytest.mark.parametrize("name", ["Müller", "Łódź", "Газпром", "Société Générale", "Zoë Ångström", "Αθήνα",
                                  "«Газпром»", "łóżko", "Lǚ Wěi", "Straße", "São Paulo", "Ærø", "25°±2",
                                  "Timișoara", "Təşkilat", "Ґудзь", "λόγος", "Ελλάς", "Nº 5", "¿Qué?"])
def test_utf8_names_of_one_script_stay_utf8(name):
    """The GBK test for strictly valid UTF-8 looks for words that mix scripts; real names keep one."""
    content = read_csv_bytes(f"customer_id,customer_name\nK1,{name}\nK2,{name} GmbH\n".encode("utf-8"))
    assert content.encoding == "utf-8-sig" and content.rows == [["K1", name], ["K2", f"{name} GmbH"]]


def test_short_gbk_customers_file_loads(conn, inbox):
    record = ["K1", "小米科技", "technology", "national", "North", "Wang Min", "2021-06-01", TS]
    write(inbox, "customers/part-0001.csv", customer_csv([record]).encode("gbk"))
    ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select customer_id, customer_name, account_manager from raw.customers") == [
        ("K1", "小米科技", "Wang Min"),
    ]
    assert fetch(conn, "select encoding from audit.manifest") == [("gb18030",)]


def test_damaged_utf8_file_is_still_refused():
    """A UTF-8 file with one byte sequence cut short is damaged, not GBK: read as GB18030 every
    Chinese value would be garbled, so it is refused (undecodable)."""
    good = customer_csv([customer("K1", "华东重工集团"), customer("K2", "蓝海科技")]).encode("utf-8")
    damaged = good + "K3,西部".encode("utf-8")[:-1] + b",technology\n"  # 2 of the 3 bytes of 部
    assert unreadable(read_csv_bytes, damaged).reason == "undecodable"


def test_big5_text_is_refused_not_read_as_gb18030():
    """Big5 (Traditional Chinese) bytes decode as GB18030 without an error, into other characters; some
    of its pairs land in GB18030's user-defined (private-use) areas, which no Chinese text uses: 華 is
    B5D8 in Big5, which GB18030 reads as U+E124. So the file is refused, not loaded as garbage."""
    big5 = customer_csv([customer("K1", "華東重工集團"), customer("K2", "台北市信義區")]).encode("big5")
    assert any("\ue000" <= ch <= "\uf8ff" for ch in big5.decode("gb18030"))
    refused = unreadable(read_csv_bytes, big5)
    assert refused.reason == "undecodable" and "Big5" in refused.detail
    # the same names written as GBK (simplified and traditional characters alike) still load
    assert read_csv_bytes(customer_csv([customer("K1", "華東重工集團")]).encode("gbk")).rows[0][1] == "華東重工集團"


# --------------------------------------------------------------------------- 2. CSV quoting


def test_rows_of_empty_cells_and_blank_lines_above_the_header_are_skipped(conn, inbox):
    """An Excel export keeps `,,,,` for rows whose cells were cleared, and may start with a blank line:
    those hold no value, so they are neither loaded nor quarantined (8 such rows beside 20 good ones put
    the feed over the 5% reject threshold and nothing loaded)."""
    header = "order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at"
    good = [f"O{i},K1,,2024-03-01,completed,CNY,10,10,,{TS}" for i in range(20)]
    text = "\r\n" + header + "\r\n" + "\r\n".join(good) + "\r\n" + ",,,,,,,,,\r\n" * 7 + " , ,,,,,,,,\r\n"
    content = read_csv_bytes(text.encode("utf-8"))
    assert content.header == header.split(",")
    assert len(content.rows) == 20 and content.lines == list(range(3, 23))  # the header is on line 2
    write(inbox, "orders/part-0001.csv", text)
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select count(*) from raw.orders") == [(20,)]
    assert fetch(conn, "select count(*) from quarantine.orders") == [(0,)]
    assert (result.feeds["orders"].rows_read, result.feeds["orders"].rows_quarantined) == (20, 0)


def test_unclosed_quote_makes_the_file_unreadable_naming_the_line(conn, inbox):
    """An unclosed quote would swallow every later line into one field: the file is not a CSV
    that can be read as a whole, so it is quarantined and no row of it loads."""
    text = (",".join(ORDER_HEADER) + "\n"
            f"O1,K1,2024-03-01,open,10,9,{TS}\n"
            f'O2,K1,2024-03-02,open,"10,9,{TS}\n'
            f"O3,K1,2024-03-03,open,10,9,{TS}\n")
    bad = unreadable(read_csv_bytes, text.encode())
    assert bad.reason == "unreadable"
    assert "line 3" in bad.detail and "never closed" in bad.detail and "\n" not in bad.detail

    write(inbox, "orders/part-0001.csv", text)
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select file_name, reason from quarantine.files") == [("orders/part-0001.csv", "unreadable")]
    assert fetch(conn, "select count(*) from raw.orders") == [(0,)]


def test_text_after_a_closing_quote_spoils_one_value_not_the_file():
    """`"x"y` is bad quoting of one value: the file still loads, the value read as `xy` (as the
    csv module's default mode reads it), and the row's own checks decide about it."""
    content = read_csv_bytes(b'a,b\n1,2\n3,"x"y\n4,"z"\n')
    assert content.rows == [["1", "2"], ["3", "xy"], ["4", "z"]]
    assert content.lines == [2, 3, 4]


def test_quoted_fields_with_line_breaks_commas_and_quotes_still_load():
    data = b'a,b\n1,"first\r\nsecond, ""third"""\n\n2,x\n'
    content = read_csv_bytes(data)
    assert content.rows == [["1", 'first\r\nsecond, "third"'], ["2", "x"]]
    assert content.lines == [2, 5]


# --------------------------------------------------------------------------- 3. long fields


def test_a_field_longer_than_the_csv_default_limit_loads(conn, inbox):
    """A survey comment of 200 000 characters (the csv module refuses 131 072 by default)."""
    comment = "很满意" * 60_000 + "!" * 20_000
    header = ["response_id", "customer_id", "submitted_at", "comment", "updated_at"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, ["R1", "K1", TS, comment, TS]])
    write(inbox, "survey_responses/part-0001.csv", buf.getvalue())
    ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select response_id, length(comment) from raw.survey_responses") == [("R1", 200_000)]


# --------------------------------------------------------------------------- 4. JSONL and JSON


def test_jsonl_numbers_keep_their_exact_value_in_plain_notation():
    data = (b'{"order_id": "O1", "list_amount": 98765432109876.543, "net_amount": 1e-05, "n": 10,'
            b' "flag": true, "off": false, "gone": null, "tags": [1, 2.50, "a"], "meta": {"k": 0.10}}\n')
    content = read_jsonl_bytes(data)
    assert content.header == ["order_id", "list_amount", "net_amount", "n", "flag", "off", "gone", "tags", "meta"]
    assert content.rows == [["O1", "98765432109876.543", "0.00001", "10", "true", "false", None,
                             '[1, 2.50, "a"]', '{"k": 0.10}']]


def test_a_json_number_with_a_zero_fraction_is_the_integer_a_csv_cell_would_hold():
    """pandas' to_json writes an integer column with a blank as floats (9.0): an integer column
    must take it. Other fractions stay as written."""
    content = read_jsonl_bytes(b'{"a": 9.0, "b": -10.000, "c": 2.50, "d": 1.0e1, "e": 0.0}\n')
    assert content.rows == [["9", "-10", "2.50", "10", "0"]]


def test_jsonl_header_is_keys_first_seen_and_lines_are_file_lines():
    data = ('\ufeff{"a": "x", "b": "华东"}\r\n'
            "\n"
            "   \n"
            '{"c": 3, "a": "y"}\r\n'
            '{"b": "1,000"}').encode("utf-8")
    content = read_jsonl_bytes(data)
    assert content.header == ["a", "b", "c"]
    assert content.rows == [["x", "华东", None], ["y", None, "3"], [None, "1,000", None]]
    assert content.lines == [1, 4, 5]


@pytest.mark.parametrize("data, line", [
    (b'{"a": 1}\n{"a": 2,}\n{"a": 3}\n', 2),
    (b'{"a": 1}\n\n["a", 2]\n', 3),
    (b'{"a": 1}\n"text"\n', 2),
    (b'{"a": 1}\n{"a": 2}\n{"a": \n', 3),
])
def test_a_bad_jsonl_line_makes_the_file_unreadable_naming_the_line(data, line):
    bad = unreadable(read_jsonl_bytes, data)
    assert bad.reason == "unreadable"
    assert f"line {line}" in bad.detail and "\n" not in bad.detail


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n  \r\n"])
def test_an_empty_jsonl_file_is_empty(data):
    assert unreadable(read_jsonl_bytes, data).reason == "empty"


def test_jsonl_that_is_not_utf8_is_undecodable():
    assert unreadable(read_jsonl_bytes, '{"customer_name": "小米科技"}\n'.encode("gbk")).reason == "undecodable"


def test_jsonl_amount_with_thousands_separator_is_a_bad_row_not_a_bad_file(conn, inbox):
    """One string "1,000" in a numeric column quarantines that row (bad_number) only; the other
    rows load with their amounts as written."""
    write(inbox, "orders/part-0001.jsonl",
          f'{{"order_id": "O1", "customer_id": "K1", "order_date": "2024-03-01", "status": "open", '
          f'"list_amount": 98765432109876.543, "net_amount": 0.00001, "updated_at": "{TS}"}}\n'
          f'{{"order_id": "O2", "customer_id": "K1", "order_date": "2024-03-02", "status": "open", '
          f'"list_amount": "1,000", "net_amount": 900, "updated_at": "{TS}"}}\n'
          f'{{"order_id": "O3", "customer_id": "K1", "order_date": "2024-03-03", "status": "open", '
          f'"list_amount": 100.10, "net_amount": 100, "updated_at": "{TS}"}}\n')
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select order_id, list_amount, net_amount, _line from raw.orders order by order_id") == [
        ("O1", "98765432109876.543", "0.00001", 1),
        ("O3", "100.10", "100", 3),
    ]
    assert fetch(conn, "select order_id, list_amount, _reason, _line from quarantine.orders") == [
        ("O2", "1,000", "bad_number:list_amount", 2),
    ]


def test_json_array_of_objects_loads_like_jsonl(conn, inbox):
    write(inbox, "orders/part-0001.json",
          f'[{{"order_id": "O1", "customer_id": "K1", "order_date": "2024-03-01", "status": "open",\n'
          f'   "list_amount": 110.50, "net_amount": 100, "updated_at": "{TS}"}},\n'
          f' {{"ORDER_ID": "O2", "Customer_ID": "K2", "order_date": "2024-03-02", "status": "completed",\n'
          f'   "list_amount": 20, "net_amount": 1E+2, "updated_at": "{TS}"}}]\n')
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select order_id, customer_id, list_amount, net_amount, _line from raw.orders "
                       "order by order_id") == [("O1", "K1", "110.50", "100", 1), ("O2", "K2", "20", "100", 2)]
    # a JSON number with an exponent is the same number in plain notation: 1E+2 is 100
    assert fetch(conn, "select count(*) from quarantine.orders") == [(0,)]


@pytest.mark.parametrize("data, detail", [
    (b'{"order_id": "O1"}', "not a JSON array of objects"),
    (b'[{"order_id": "O1"}, "O2"]', "element 2 is not a JSON object"),
    (b'[{"order_id": "O1"},\n {"order_id": }]', "line 2"),
])
def test_json_that_is_not_an_array_of_objects_is_unreadable(data, detail):
    bad = unreadable(read_json_bytes, data)
    assert bad.reason == "unreadable" and detail in bad.detail


# --------------------------------------------------------------------------- 5. header names


def test_upper_case_and_padded_headers_match_the_contract(conn, inbox):
    write(inbox, "customers/part-0001.csv",
          customer_csv([customer("K1", "华东重工集团")],
                       header=[" CUSTOMER_ID", "Customer_Name", *CUSTOMER_HEADER[2:6], "Signed_On ", "UPDATED_AT"]))
    write(inbox, "customers/part-0002.jsonl",
          f'{{"Customer_ID": "K2", "CUSTOMER_NAME": "蓝海科技", "Signed_On": "2022-01-01", "Updated_At": "{TS}"}}\n')
    pq.write_table(pa.table({"CUSTOMER_ID": ["K3"], "Customer_Name": ["西部能源"], "SIGNED_ON": ["2023-01-01"],
                             " updated_at ": [TS]}), inbox / "customers" / "part-0003.parquet")
    ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select customer_id, customer_name, signed_on, updated_at from raw.customers "
                       "order by customer_id") == [
        ("K1", "华东重工集团", "2021-06-01", TS),
        ("K2", "蓝海科技", "2022-01-01", TS),
        ("K3", "西部能源", "2023-01-01", TS),
    ]


def test_typed_parquet_from_pandas_reads_like_its_csv(conn, inbox):
    """What pandas' to_parquet writes: a date column as timestamps at midnight, an integer column
    with a blank as float64, amounts as float64. Each value is read as the text a CSV cell would
    hold (2024-03-01, 10, 100); a date with a time of day is still a bad date, and a fractional
    score a bad integer."""
    midnight = [datetime(2024, 3, 1), datetime(2024, 3, 2, 13, 0)]
    for feed in ("orders", "survey_responses"):
        (inbox / feed).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "order_id": ["O1", "O2"], "customer_id": ["K1", "K1"],
        "order_date": pa.array(midnight, pa.timestamp("us")), "status": ["open", "open"],
        "list_amount": pa.array([110.0, 20.5], pa.float64()), "net_amount": pa.array([100.0, 20.0], pa.float64()),
        "updated_at": [TS, TS]}), inbox / "orders" / "part-0001.parquet")
    pq.write_table(pa.table({
        "response_id": ["R1", "R2", "R3"], "customer_id": ["K1", "K1", "K1"], "survey_id": ["w1"] * 3,
        "submitted_at": [TS] * 3, "nps_score": pa.array([10.0, None, 7.5], pa.float64()),
        "updated_at": [TS] * 3}), inbox / "survey_responses" / "part-0001.parquet")
    # a float below 1e-4, which DuckDB's text of a double writes with an exponent: 1 LBP in CNY
    (inbox / "fx_rates").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"currency": ["LBP", "VND"], "month": ["2024-03", "2024-03"],
                             "rate_to_reporting": pa.array([0.0000803, 0.000285], pa.float64())}),
                   inbox / "fx_rates" / "part-0001.parquet")
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select currency, rate_to_reporting from raw.fx_rates order by 1") == [
        ("LBP", "0.0000803"), ("VND", "0.000285")]
    assert fetch(conn, "select count(*) from quarantine.fx_rates") == [(0,)]
    assert fetch(conn, "select order_id, order_date, list_amount, net_amount from raw.orders") == [
        ("O1", "2024-03-01", "110", "100")]
    assert fetch(conn, "select order_id, order_date, _reason from quarantine.orders") == [
        ("O2", "2024-03-02 13:00:00", "bad_date:order_date")]
    assert fetch(conn, "select response_id, nps_score from raw.survey_responses order by 1") == [
        ("R1", "10"), ("R2", None)]
    assert fetch(conn, "select response_id, _reason from quarantine.survey_responses") == [
        ("R3", "bad_integer:nps_score")]


def test_columns_with_the_same_normalised_name_quarantine_the_file(conn, inbox):
    """`customer_id` and `CUSTOMER_ID` in one file: which one is the key cannot be known."""
    header = CUSTOMER_HEADER + ["CUSTOMER_ID "]
    write(inbox, "customers/part-0001.csv", customer_csv([customer("K1", "华东重工集团") + ["K9"]], header=header))
    write(inbox, "customers/part-0002.jsonl",
          f'{{"customer_id": "K2", "customer_name": "A", "Customer_Name": "B", "signed_on": "2022-01-01", '
          f'"updated_at": "{TS}"}}\n')
    write(inbox, "customers/part-0003.jsonl",
          f'{{"customer_id": "K3", "customer_name": "A", "signed_on": "2022-01-01", "updated_at": "{TS}", '
          f'"customer_id": "K4"}}\n')
    pq.write_table(pa.table({"customer_id": ["K5"], "Customer_ID": ["K6"], "customer_name": ["C"],
                             "signed_on": ["2022-01-01"], "updated_at": [TS]}),
                   inbox / "customers" / "part-0004.parquet")
    # unnamed columns (trailing commas of an Excel export) are no duplicates
    write(inbox, "customers/part-0005.csv",
          ",".join(CUSTOMER_HEADER) + ",,\n" + ",".join(customer("K7", "蓝海科技")) + ",,\n")
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select file_name, reason from quarantine.files order by file_name") == [
        ("customers/part-0001.csv", "duplicate_columns"),
        ("customers/part-0002.jsonl", "duplicate_columns"),
        ("customers/part-0003.jsonl", "duplicate_columns"),
        ("customers/part-0004.parquet", "duplicate_columns"),
    ]
    [(detail,)] = fetch(conn, "select detail from quarantine.files where file_name like '%0001.csv'")
    assert "customer_id" in detail
    assert fetch(conn, "select customer_id from raw.customers") == [("K7",)]
    assert (result.feeds["customers"].files_seen, result.feeds["customers"].files_quarantined) == (5, 4)


# --------------------------------------------------------------------------- 6. file selection


@pytest.mark.parametrize("name, taken", [
    ("orders.csv", True), ("orders.CSV", True), ("Orders.Csv.GZ", True), ("x.PARQUET", True),
    ("x.JSONL", True), ("x.json", True), ("report.xlsx", True), ("notes.txt", True), ("README", True),
    (".hidden.csv", False), (".DS_Store", False), ("orders.csv.tmp", False), ("orders.csv.PART", False),
])
def test_candidates_are_every_file_but_hidden_and_partial_ones(name, taken):
    assert is_candidate(Path(name)) is taken


def test_upper_case_suffixes_are_read(conn, inbox):
    row = f"O1,K1,2024-03-01,open,10,9,{TS}\n"
    write(inbox, "orders/part-0001.CSV", ",".join(ORDER_HEADER) + "\n" + row)
    write(inbox, "orders/part-0002.Csv.Gz",
          gzip.compress((",".join(ORDER_HEADER) + "\n" + row.replace("O1", "O2")).encode()))
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select order_id, _file from raw.orders order by order_id") == [
        ("O1", "orders/part-0001.CSV"), ("O2", "orders/part-0002.Csv.Gz"),
    ]
    assert (result.feeds["orders"].files_seen, result.feeds["orders"].files_taken) == (2, 2)


def test_files_of_no_supported_format_are_seen_and_quarantined(conn, inbox):
    """sources.md 'Bad input': a file that is not a CSV/Parquet/JSON at all is quarantined whole
    with its reason; hidden files and files still being written are left alone."""
    write(inbox, "orders/part-0001.csv", ",".join(ORDER_HEADER) + f"\nO1,K1,2024-03-01,open,10,9,{TS}\n")
    write(inbox, "orders/report.xlsx", b"PK\x03\x04 not really a workbook")
    write(inbox, "orders/notes.txt", "orders for March")
    write(inbox, "orders/.DS_Store", b"\x00\x00\x00\x01Bud1")
    write(inbox, "orders/part-0002.csv.part", "order_id\n")
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select file_name, reason from quarantine.files order by file_name") == [
        ("orders/notes.txt", "unsupported_format"),
        ("orders/report.xlsx", "unsupported_format"),
    ]
    assert fetch(conn, "select order_id from raw.orders") == [("O1",)]
    stats = result.feeds["orders"]
    assert (stats.files_seen, stats.files_taken, stats.files_quarantined) == (3, 1, 2)
    # recorded once: the next run skips them like any file already taken
    again = ingest_inbox(conn, inbox, "run-2", reject_threshold=0.05)
    assert (again.feeds["orders"].files_seen, again.feeds["orders"].files_skipped) == (3, 3)
    assert fetch(conn, "select count(*) from quarantine.files") == [(2,)]


def test_read_file_refuses_unknown_suffix_without_reading(tmp_path):
    path = tmp_path / "orders.xlsx"
    path.write_bytes(b"order_id\nO1\n")  # CSV bytes under another name are still not taken as CSV
    with pytest.raises(UnreadableFile) as caught:
        read_file(path)
    assert caught.value.reason == "unsupported_format"


def test_new_file_reasons_are_in_the_contract_and_documented():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "ingest.md").read_text(encoding="utf-8")
    for code in ("duplicate_columns", "unsupported_format"):
        assert code in FILE_REASONS and f"`{code}`" in docs


# --------------------------------------------------------------------------- review follow-ups


def test_an_unsupported_file_renamed_to_csv_is_taken(conn, inbox):
    """An `orders.txt` is quarantined (unsupported_format); the same bytes renamed `orders.csv` are a
    new delivery, not "already taken"."""
    text = ",".join(ORDER_HEADER) + f"\nO1,K1,2024-03-01,open,10,9,{TS}\n"
    write(inbox, "orders/orders.txt", text)
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select file_name, reason from quarantine.files") == [("orders/orders.txt", "unsupported_format")]
    ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)  # the same unsupported file is seen once
    assert fetch(conn, "select count(*) from quarantine.files") == [(1,)]
    (inbox / "orders" / "orders.txt").rename(inbox / "orders" / "orders.csv")
    ingest_inbox(conn, inbox, "run-3", reject_threshold=1.0)
    assert fetch(conn, "select order_id, _file from raw.orders") == [("O1", "orders/orders.csv")]


def test_an_unclosed_quote_after_another_quoting_fault_is_still_refused():
    """`"a"b` sends the file to the lenient reading; a quote never closed later in it must not then
    swallow the following lines."""
    bad = unreadable(read_csv_bytes, b'a,b\n1,"a"b\n2,"unclosed\n3,x\n4,y\n')
    assert bad.reason == "unreadable" and "never closed" in bad.detail


def test_damaged_utf8_with_accented_latin_is_refused_not_read_as_gbk():
    """UTF-8 names with accents and one stray Latin-1 byte (0xFC for ü): damaged UTF-8, not GBK
    (read as GB18030 `Müller` would become `M眉ller`)."""
    good = customer_csv([customer("K1", "José Martínez"), customer("K2", "Zoë Ångström")]).encode("utf-8")
    damaged = good + b"K3,M\xfcller,technology\n"
    assert unreadable(read_csv_bytes, damaged).reason == "undecodable"


def test_a_json_number_with_a_huge_exponent_stays_as_written():
    content = read_jsonl_bytes(b'{"order_id": "O1", "net_amount": 1e999999999, "list_amount": 2.5E+3}\n')
    assert content.rows == [["O1", "1e999999999", "2500"]]


@pytest.mark.parametrize("data", [b"order_id,customer_id\r\n", b"\xef\xbb\xbforder_id,customer_id", b"\n\norder_id\n\n"])
def test_a_header_without_rows_is_read_as_no_rows_and_no_bytes_is_empty(data):
    """docs/decisions.md: a header-only CSV (an export with nothing new) is read, with no rows; only a file
    without a header row is quarantined as `empty`."""
    content = read_csv_bytes(data)
    assert content.rows == [] and content.header[0] == "order_id"
    for nothing in (b"", b"\xef\xbb\xbf", b" \r\n\n"):
        with pytest.raises(UnreadableFile) as err:
            read_csv_bytes(nothing)
        assert err.value.reason == "empty"
