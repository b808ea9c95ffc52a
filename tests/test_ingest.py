"""Ingest (inbox files -> raw / quarantine / audit) against the inbound contract of sources.md.

Every test writes its own small inbox into tmp_path, ingests it into a real DuckDB file
and checks values worked out by hand from the rows it wrote. No dbt is involved.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from keyaccounts.config import shared_dir

from keyaccounts.errors import InputError, RejectThresholdExceeded
from keyaccounts.ingest.loader import ingest_inbox

EXAMPLE_INBOX = shared_dir() / "spec" / "example" / "inbox"
TS = "2024-05-02T08:00:00+08:00"


# --------------------------------------------------------------------------- helpers


def order(order_id: str, **changes: str) -> dict[str, str]:
    row = dict(order_id=order_id, customer_id="K1", contract_id="C-1", order_date="2024-03-15",
               status="completed", currency="CNY", list_amount="1100", net_amount="1000",
               cost_amount="700", updated_at=TS)
    row.update(changes)
    return row


def invoice(invoice_id: str, **changes: str) -> dict[str, str]:
    row = dict(invoice_id=invoice_id, customer_id="K1", order_id="O1", invoice_date="2024-01-15",
               due_date="2024-02-14", currency="CNY", amount="1000", updated_at=TS)
    row.update(changes)
    return row


def survey(response_id: str, **changes: str) -> dict[str, str]:
    row = dict(response_id=response_id, customer_id="K1", survey_id="2024Q1",
               submitted_at="2024-02-26T09:30:00+08:00", nps_score="9", satisfaction="4",
               product_quality="4", delivery="4", after_sales_service="3", responsiveness="4",
               comment="", respondent_name="", respondent_phone="", respondent_email="", updated_at=TS)
    row.update(changes)
    return row


def override(customer_id: str, **changes: str) -> dict[str, str]:
    row = dict(customer_id=customer_id, eval_month="2024-04", tier="A", reason="strategic account",
               approved_by="王敏", updated_at=TS)
    row.update(changes)
    return row


def customer(customer_id: str, name: str, **changes: str) -> dict[str, str]:
    row = dict(customer_id=customer_id, customer_name=name, industry="manufacturing", scope="global",
               region="East", account_manager="王敏", signed_on="2021-06-01", updated_at=TS)
    row.update(changes)
    return row


BUILDERS = {"orders": order, "invoices": invoice, "survey_responses": survey, "tier_overrides": override}
KEYS = {"orders": "order_id", "invoices": "invoice_id", "survey_responses": "response_id",
        "tier_overrides": "customer_id"}


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8",
              header: list[str] | None = None) -> bytes:
    """Write rows as CSV with '\\n' line ends (so line numbers are easy to count); return the bytes."""
    header = header or list(rows[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header])
    return path.read_bytes()


def fetch(conn, sql: str, params: list | None = None) -> list[tuple]:
    return conn.execute(sql, params or []).fetchall()


# --------------------------------------------------------------------------- good rows


def test_good_rows_land_as_text_with_file_line_and_run_id(conn, inbox):
    """sources.md 'Two kinds of source' / 'Bad input': a good row lands in raw.<feed> as text,
    with the file and the line its record starts on (header = line 1; a quoted line break
    pushes the next record down; a blank line is skipped but still counted)."""
    path = inbox / "orders" / "part-0001.csv"
    path.parent.mkdir()
    path.write_text(
        "order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at\n"
        f"O1,K1,C-1,2024-03-15,completed,CNY,1100,100.50,700,{TS}\n"           # line 2
        f'O2,K2,"C-2\nsecond line",2024-03-16,open,USD,20,10.0,,{TS}\n'        # lines 3-4
        f"O3,K3,,2024-03-17,cancelled,,0,0,,{TS}\n"                             # line 5
        "\n"                                                                    # line 6 (blank)
        f"O4,K3,C-4,2024-03-18,returned,CNY,5,5,1,{TS}\n",                      # line 7
        encoding="utf-8",
    )
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select order_id, _file, _line, _run_id from raw.orders order by _line") == [
        ("O1", "orders/part-0001.csv", 2, "run-1"),
        ("O2", "orders/part-0001.csv", 3, "run-1"),
        ("O3", "orders/part-0001.csv", 5, "run-1"),
        ("O4", "orders/part-0001.csv", 7, "run-1"),
    ]
    # values are kept as the text of the file, not re-formatted numbers
    assert fetch(conn, "select contract_id, net_amount, currency, cost_amount from raw.orders order by _line") == [
        ("C-1", "100.50", "CNY", "700"),
        ("C-2\nsecond line", "10.0", "USD", None),
        (None, "0", None, None),
        ("C-4", "5", "CNY", "1"),
    ]
    types = dict(fetch(conn, "select column_name, data_type from information_schema.columns "
                             "where table_schema = 'raw' and table_name = 'orders'"))
    for column in ("order_id", "order_date", "list_amount", "net_amount", "updated_at"):
        assert types[column] == "VARCHAR"
    assert fetch(conn, "select count(*) from quarantine.orders") == [(0,)]


# --------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize(
    "feed, column, bad_value, reason",
    [
        ("orders", "customer_id", "", "missing:customer_id"),
        ("orders", "order_date", "2024-13-45", "bad_date:order_date"),
        ("orders", "status", "shipped", "not_allowed:status"),
        ("orders", "net_amount", "-5", "out_of_range:net_amount"),
        ("orders", "net_amount", "abc", "bad_number:net_amount"),
        # MAX_AMOUNT: 10^15 on one row at most (docs/ingest.md), so no sum can overflow the decimals
        ("orders", "net_amount", "1000000000000000.01", "out_of_range:net_amount"),
        ("invoices", "amount", "99999999999999999999", "out_of_range:amount"),
        ("orders", "updated_at", "not-a-time", "bad_timestamp:updated_at"),
        # offsets no place uses: DuckDB would apply them as written and move the instant
        ("orders", "updated_at", "2024-05-20T08:00:00+25:00", "bad_timestamp:updated_at"),
        ("orders", "updated_at", "2024-05-20T08:00:00+08:99", "bad_timestamp:updated_at"),
        ("survey_responses", "submitted_at", "2024-05-20T08:00:00-1500", "bad_timestamp:submitted_at"),
        ("orders", "currency", "usd", "bad_currency:currency"),
        ("invoices", "due_date", "2024-01-10", "due_before_invoice"),  # invoice_date is 2024-01-15
        ("invoices", "amount", "0", "out_of_range:amount"),
        ("survey_responses", "nps_score", "11", "out_of_range:nps_score"),
        ("survey_responses", "satisfaction", "4.5", "bad_integer:satisfaction"),
        ("tier_overrides", "approved_by", "", "not_approved"),
        ("tier_overrides", "eval_month", "2024-4", "bad_month:eval_month"),
    ],
)
def test_bad_row_is_quarantined_with_reason_and_the_rest_loads(conn, inbox, feed, column, bad_value, reason):
    """sources.md 'Bad input': a row breaking the contract goes to quarantine.<feed> with file,
    line, raw values and a machine-readable reason; the other rows of the file load."""
    build, key = BUILDERS[feed], KEYS[feed]
    write_csv(inbox / feed / "part-0001.csv", [build("A"), build("B", **{column: bad_value}), build("C")])

    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, f"select {key}, _file, _line, _run_id, _reason, {column} from quarantine.{feed}") == [
        ("B", f"{feed}/part-0001.csv", 3, "run-1", reason, bad_value or None),
    ]
    assert fetch(conn, f"select {key}, _line from raw.{feed} order by _line") == [("A", 2), ("C", 4)]
    stats = result.feeds[feed]
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (3, 2, 1)


def test_override_file_without_an_approved_by_column_quarantines_each_row(conn, inbox):
    """sources.md: "A row without approved_by is quarantined (not_approved)": a file that lacks the
    column altogether has no approved row, so each row is quarantined with that reason (not the file
    as missing_columns), and a file with the column still loads its approved rows."""
    rows = [override("K1"), override("K2", eval_month="2024-05")]
    for r in rows:
        del r["approved_by"]
    write_csv(inbox / "tier_overrides" / "part-0001.csv", rows)
    write_csv(inbox / "tier_overrides" / "part-0002.csv", [override("K3")])

    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select customer_id, eval_month, _line, _reason, approved_by from quarantine.tier_overrides "
                       "order by _line") == [("K1", "2024-04", 2, "not_approved", None),
                                            ("K2", "2024-05", 3, "not_approved", None)]
    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select customer_id, approved_by from raw.tier_overrides") == [("K3", "王敏")]
    stats = result.feeds["tier_overrides"]
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (3, 1, 2)


def test_fx_rates_keep_18_decimals(conn, inbox):
    """A rate is checked at staging's scale for rates (18 places): 1e-9 and a rate written in full
    (1/7.1) are valid (> 0); 1e-19 rounds to 0 there and is out of range, not loaded as a zero rate."""
    path = inbox / "fx_rates" / "part-0001.csv"
    path.parent.mkdir(parents=True)
    path.write_text("currency,month,rate_to_reporting\nJPY,2024-04,0.000000001\n"
                    "USD,2024-04,0.1408450704225352\nEUR,2024-04,0.0000000000000000001\n", encoding="utf-8")
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select currency, rate_to_reporting from raw.fx_rates order by _line") == [
        ("JPY", "0.000000001"), ("USD", "0.1408450704225352")]
    assert fetch(conn, "select currency, _reason from quarantine.fx_rates") == [
        ("EUR", "out_of_range:rate_to_reporting")]


def test_row_breaking_two_rules_carries_both_reasons(conn, inbox):
    """sources.md 'Bad input': the reason is machine-readable; a row with two faults names both."""
    write_csv(inbox / "orders" / "part-0001.csv", [order("O1", customer_id="", status="shipped")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    [(reason,)] = fetch(conn, "select _reason from quarantine.orders")
    assert set(reason.split(";")) == {"missing:customer_id", "not_allowed:status"}


def test_due_date_equal_to_invoice_date_is_good(conn, inbox):
    """sources.md 'invoices': due_date >= invoice_date, so the same day is allowed."""
    write_csv(inbox / "invoices" / "part-0001.csv", [invoice("I1", invoice_date="2024-01-15", due_date="2024-01-15")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select invoice_id from raw.invoices") == [("I1",)]
    assert fetch(conn, "select count(*) from quarantine.invoices") == [(0,)]


# --------------------------------------------------------------------------- reject threshold


def test_reject_share_over_threshold_raises_and_names_the_feed(conn, inbox):
    """sources.md 'Bad input': more than the configured share (here 5%) of a feed's rows
    quarantined fails the run loudly. 1 bad of 10 = 10% > 5%."""
    write_csv(inbox / "customers" / "part-0001.csv", [customer("K1", "华东重工集团")])
    rows = [order(f"O{i:02d}") for i in range(1, 10)] + [order("O10", status="shipped")]
    write_csv(inbox / "orders" / "part-0001.csv", rows)

    with pytest.raises(RejectThresholdExceeded) as excinfo:
        ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    message = str(excinfo.value)
    assert "orders" in message
    assert "customers" not in message  # customers had no bad row


def test_rejected_run_takes_no_file_so_a_retry_fails_the_same_way(conn, inbox):
    """sources.md: no tier table is published from a rejected run, not even by a retry. The
    quarantined rows are kept for inspection (each bad row once, as its latest attempt saw it);
    once the bad file is removed the rest loads."""
    write_csv(inbox / "customers" / "part-0001.csv", [customer("K1", "华东重工集团")])
    write_csv(inbox / "orders" / "part-0001.csv", [order("O1"), order("O2", status="shipped")])
    for run_id in ("run-1", "run-2"):
        with pytest.raises(RejectThresholdExceeded):
            ingest_inbox(conn, inbox, run_id, reject_threshold=0.05)
    assert fetch(conn, "select count(*) from raw.orders") == [(0,)]
    assert fetch(conn, "select count(*) from raw.customers") == [(0,)]  # nothing of a rejected run
    assert fetch(conn, "select count(*) from audit.manifest") == [(0,)]
    assert fetch(conn, "select order_id, _line, _run_id from quarantine.orders") == [("O2", 3, "run-2")]
    (inbox / "orders" / "part-0001.csv").unlink()
    write_csv(inbox / "orders" / "part-0002.csv", [order("O1")])
    result = ingest_inbox(conn, inbox, "run-3", reject_threshold=0.05)
    assert result.feeds["orders"].rows_loaded == 1 and result.feeds["customers"].rows_loaded == 1


def test_a_retry_that_takes_a_rejected_file_lists_its_bad_rows_once(conn, inbox):
    """A run rejected over the threshold, then the same files taken with a higher threshold: the bad
    row and the bad file are each listed once in quarantine, by the run that took them."""
    write_csv(inbox / "orders" / "part-0001.csv", [order("O1"), order("O2", status="shipped")])
    (inbox / "orders" / "part-0002.csv").write_bytes(b"")
    with pytest.raises(RejectThresholdExceeded):
        ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    ingest_inbox(conn, inbox, "run-2", reject_threshold=0.6)
    assert fetch(conn, "select order_id, _line, _run_id, _file_seq is not null from quarantine.orders") == [
        ("O2", 3, "run-2", True)]
    assert fetch(conn, "select file_name, reason, run_id from quarantine.files") == [
        ("orders/part-0002.csv", "empty", "run-2")]
    assert fetch(conn, "select order_id from raw.orders") == [("O1",)]


def test_reject_share_under_threshold_passes(conn, inbox):
    """sources.md 'Bad input': 1 bad of 25 = 4% is within a 5% threshold; the run succeeds."""
    rows = [order(f"O{i:02d}") for i in range(1, 25)] + [order("O25", net_amount="abc")]
    write_csv(inbox / "orders" / "part-0001.csv", rows)
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    stats = result.feeds["orders"]
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (25, 24, 1)


def test_reject_share_equal_to_threshold_passes(conn, inbox):
    """sources.md 'Bad input': only *more than* the share fails; 1 of 20 is exactly 5%."""
    rows = [order(f"O{i:02d}") for i in range(1, 20)] + [order("O20", status="shipped")]
    write_csv(inbox / "orders" / "part-0001.csv", rows)
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert result.feeds["orders"].rows_quarantined == 1


# --------------------------------------------------------------------------- whole files


def test_unreadable_files_are_quarantined_whole_and_other_files_load(conn, inbox):
    """sources.md 'Bad input': a file that cannot be read as a whole (required column missing,
    empty, binary, undecodable, not gzip) is quarantined with its reason; other files load."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order("O1"), order("O2")])
    header = [c for c in order("x") if c != "net_amount"]
    write_csv(folder / "part-0002.csv", [order("O3")], header=header)
    (folder / "part-0003.csv").write_bytes(b"")
    (folder / "part-0004.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    (folder / "part-0005.csv").write_bytes(b"order_id,customer_id\n" + bytes([0xFF, 0xFE, 0xFD, 0x80, 0x81]) * 10)
    (folder / "part-0006.csv.gz").write_bytes(b"order_id,customer_id\nO9,K1\n")  # named .gz, not gzip

    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select file_name, reason from quarantine.files where feed = 'orders' order by file_name") == [
        ("orders/part-0002.csv", "missing_columns"),
        ("orders/part-0003.csv", "empty"),
        ("orders/part-0004.csv", "unreadable"),  # NUL bytes: binary, not a CSV
        ("orders/part-0005.csv", "undecodable"),  # neither UTF-8 nor GB18030
        ("orders/part-0006.csv.gz", "unreadable"),
    ]
    [(detail,)] = fetch(conn, "select detail from quarantine.files where file_name = 'orders/part-0002.csv'")
    assert "net_amount" in detail
    assert fetch(conn, "select order_id from raw.orders order by order_id") == [("O1",), ("O2",)]
    stats = result.feeds["orders"]
    assert (stats.files_seen, stats.files_taken, stats.files_quarantined) == (6, 1, 5)
    assert fetch(conn, "select status, count(*) from audit.manifest group by status order by status") == [
        ("loaded", 1), ("quarantined", 5),
    ]


def test_a_file_missing_a_column_is_quarantined_whole_and_the_others_still_load(conn, inbox):
    """sources.md: a file that cannot be read as a whole (a required column missing) "is quarantined whole
    with its reason; other files still load". Its rows are not rows quarantined one by one, so they do
    not count toward the reject threshold: 3 rows beside 40 good ones (7% of the feed) load the 40."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order(f"O{i}") for i in range(40)])
    header = [c for c in order("x") if c != "net_amount"]
    write_csv(folder / "part-0002.csv", [order(f"L{i}") for i in range(3)], header=header)
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    stats = result.feeds["orders"]
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined, stats.files_quarantined) == (40, 40, 0, 1)
    assert fetch(conn, "select count(*) from raw.orders") == [(40,)]
    assert fetch(conn, "select file_name, reason, detail from quarantine.files") == [
        ("orders/part-0002.csv", "missing_columns", "missing required column(s): net_amount; none of its 3 row(s) loaded")]


def test_a_file_of_no_contract_column_is_not_a_csv_of_the_feed(conn, inbox):
    """sources.md: a file "not a CSV/Parquet/JSON at all" is quarantined whole: an HTML error page saved as
    .csv, or a `;`-separated export (one column), is `unreadable`, not a file of rows missing columns."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order(f"O{i}") for i in range(3)])
    (folder / "part-0002.csv").write_text(
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
        "</body>\n</html>\n", encoding="utf-8")
    (folder / "part-0003.csv").write_text("order_id;customer_id;order_date\nO9;K1;2024-06-10\n", encoding="utf-8")
    (folder / "part-0004.json").write_text("[]", encoding="utf-8")
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    got = fetch(conn, "select file_name, reason, detail from quarantine.files order by file_name")
    assert [(name, reason) for name, reason, _ in got] == [
        ("orders/part-0002.csv", "unreadable"), ("orders/part-0003.csv", "unreadable"), ("orders/part-0004.json", "empty")]
    assert "no column of the orders contract" in got[0][2] and "separated by ';'" in got[1][2]
    assert (result.feeds["orders"].rows_loaded, result.feeds["orders"].files_quarantined) == (3, 3)


def test_every_empty_file_is_reported_not_skipped_as_taken(conn, inbox):
    """Every empty file has the same checksum: a new one, in any feed, is quarantined (`empty`) again; the
    same empty file under its own name is not reported twice. Content loaded into one feed is not taken as
    already loaded when the same bytes land in another feed's folder."""
    (inbox / "orders").mkdir(parents=True)
    (inbox / "orders" / "2024-06-01.csv").write_bytes(b"")
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    (inbox / "payments").mkdir()
    (inbox / "payments" / "2024-06-02.csv").write_bytes(b"")
    (inbox / "orders" / "2024-06-02.csv").write_bytes(b"")
    result = ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)
    assert (result.feeds["payments"].files_quarantined, result.feeds["payments"].files_skipped) == (1, 0)
    assert (result.feeds["orders"].files_quarantined, result.feeds["orders"].files_skipped) == (1, 1)
    assert fetch(conn, "select file_name, reason from quarantine.files order by file_name") == [
        ("orders/2024-06-01.csv", "empty"), ("orders/2024-06-02.csv", "empty"), ("payments/2024-06-02.csv", "empty")]


def test_a_row_of_shifted_fields_keeps_no_personal_data_in_quarantine(conn, inbox):
    """sources.md "Personal data": respondent name, phone and email stay in raw. An unquoted comma in a
    comment shifts them into other columns (updated_at holds the email), and a row one field short shifts
    them the other way: such a row of a feed with personal data keeps only its key in quarantine."""
    folder = inbox / "survey_responses"
    folder.mkdir(parents=True)
    header = "response_id,customer_id,survey_id,submitted_at,nps_score,satisfaction,product_quality,delivery," \
             "after_sales_service,responsiveness,comment,respondent_name,respondent_phone,respondent_email,updated_at"
    (folder / "part-0001.csv").write_text(
        header + "\n"
        "R1,K1,W1,2024-06-01T10:00:00+08:00,9,5,,,,,great, really,张三,13800000000,zhang@example.com,2024-06-02\n"
        "R2,K1,W1,2024-06-01T10:00:00+08:00,9,5,,,,,李四,13900000000,li@example.com,2024-06-02\n"
        "R3,K1,W1,2024-06-01T10:00:00+08:00,11,5,,,,,fine,王五,13700000000,wang@example.com,2024-06-02\n",
        encoding="utf-8")
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    got = fetch(conn, "select * from quarantine.survey_responses order by _line")
    assert [(r[0], r[-1].split(";")[0]) for r in got] == [
        ("R1", "too_many_fields"), ("R2", "missing:updated_at"), ("R3", "out_of_range:nps_score")]
    text = repr(got)
    for secret in ("张三", "13800000000", "zhang@", "李四", "13900000000", "li@", "王五", "13700000000", "wang@"):
        assert secret not in text, secret
    assert got[2][10] == "fine"  # an aligned row keeps its other values for inspection


def test_repaired_file_under_a_new_name_is_taken(conn, inbox):
    """sources.md 'Bad input': a repaired file dropped again under a new name is taken."""
    folder = inbox / "orders"
    header = [c for c in order("x") if c != "net_amount"]
    write_csv(folder / "part-0001.csv", [order("O1")], header=header)
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select count(*) from raw.orders") == [(0,)]

    write_csv(folder / "part-0001-fixed.csv", [order("O1")])
    result = ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)
    assert fetch(conn, "select order_id, _file, _run_id from raw.orders") == [
        ("O1", "orders/part-0001-fixed.csv", "run-2"),
    ]
    # the broken file is not quarantined a second time
    assert fetch(conn, "select count(*) from quarantine.files") == [(1,)]
    assert result.feeds["orders"].files_skipped == 1


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_keep_chinese_text_and_first_header_column(conn, inbox, encoding):
    """sources.md 'Two kinds of source': CSV may be UTF-8, UTF-8 with BOM or GB18030/GBK; the
    loader detects which. Chinese text arrives intact and a BOM does not hide customer_id."""
    write_csv(inbox / "customers" / "part-0001.csv",
              [customer("K1", "华东重工集团"), customer("K3", "蓝海科技", account_manager="张伟")],
              encoding=encoding)
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select customer_id, customer_name, account_manager from raw.customers order by 1") == [
        ("K1", "华东重工集团", "王敏"),
        ("K3", "蓝海科技", "张伟"),
    ]


# --------------------------------------------------------------------------- which files are taken


def test_files_still_being_written_are_left_for_the_next_run(conn, inbox):
    """sources.md 'Two kinds of source': a name ending .tmp or .part is not taken now; once it
    is renamed to its final name the next run takes it."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order("O1")])
    write_csv(folder / "part-0002.csv.tmp", [order("O2")])
    write_csv(folder / "part-0003.csv.part", [order("O3")])

    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select order_id from raw.orders") == [("O1",)]
    assert result.feeds["orders"].files_seen == 1
    assert fetch(conn, "select file_name from audit.manifest") == [("orders/part-0001.csv",)]

    (folder / "part-0003.csv.part").rename(folder / "part-0003.csv")
    ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)
    assert fetch(conn, "select order_id, _run_id from raw.orders order by 1") == [("O1", "run-1"), ("O3", "run-2")]


def test_same_content_is_taken_once_and_changed_content_again(conn, inbox):
    """sources.md 'Two kinds of source': a file is ingested once (by content): the same bytes
    under a new name are skipped; a changed file under a new name is taken."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order("O1"), order("O2"), order("O3")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select count(*) from raw.orders") == [(3,)]

    shutil.copyfile(folder / "part-0001.csv", folder / "part-0001-copy.csv")
    again = ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)
    stats = again.feeds["orders"]
    # both files in the folder hold content already taken
    assert (stats.files_seen, stats.files_taken, stats.files_skipped, stats.rows_read) == (2, 0, 2, 0)
    assert fetch(conn, "select count(*) from raw.orders") == [(3,)]
    assert fetch(conn, "select count(*) from audit.manifest") == [(1,)]

    write_csv(folder / "part-0002.csv", [order("O2", status="returned", updated_at="2024-06-01T08:00:00+08:00")])
    third = ingest_inbox(conn, inbox, "run-3", reject_threshold=1.0)
    assert third.feeds["orders"].files_taken == 1
    assert fetch(conn, "select count(*) from raw.orders") == [(4,)]
    assert fetch(conn, "select order_id, status from raw.orders where _run_id = 'run-3'") == [("O2", "returned")]


def test_files_are_taken_in_byte_order_of_their_names(conn, inbox):
    """sources.md 'Bad input' (duplicates): within one run the later file is the later name in
    byte order: 'B.csv' < 'a.csv' and 'part-10.csv' < 'part-9.csv' byte-wise."""
    folder = inbox / "orders"
    for name, key in (("a.csv", "Oa"), ("B.csv", "OB"), ("part-9.csv", "O9"), ("part-10.csv", "O10")):
        write_csv(folder / name, [order(key)])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert [r[0] for r in fetch(conn, "select file_name from audit.manifest order by file_seq")] == [
        "orders/B.csv", "orders/a.csv", "orders/part-10.csv", "orders/part-9.csv",
    ]
    assert [r[0] for r in fetch(conn, "select order_id from raw.orders order by _file_seq")] == [
        "OB", "Oa", "O10", "O9",
    ]


def test_a_file_named_in_gbk_is_taken_under_its_chinese_name(conn, inbox):
    """Archives unzipped on a Chinese Windows name files in GBK bytes, which are not UTF-8: the file
    is read and recorded as 订单.csv (its name decoded as GB18030), in the byte order of its real
    name among the others ('z.csv' < b'\\xb6\\xa9...'); a GBK-named Parquet file is quarantined whole
    with its reason, and the other files still load."""
    import os

    folder = inbox / "orders"
    write_csv(folder / "z.csv", [order("OZ")])
    gbk = write_csv(folder / "tmp.csv", [order("O-GBK")])
    (folder / "tmp.csv").unlink()
    Path(os.fsdecode(bytes(folder) + b"/" + "订单.csv".encode("gbk"))).write_bytes(gbk)
    parquet = Path(os.fsdecode(bytes(folder) + b"/" + "订单.parquet".encode("gbk")))
    duckdb.sql("select 'O-PQ' as order_id").write_parquet(str(folder / "tmp.parquet"))
    (folder / "tmp.parquet").rename(parquet)
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert result.feeds["orders"].files_seen == 3
    assert fetch(conn, "select file_name from audit.manifest order by file_seq") == [
        ("orders/z.csv",), ("orders/订单.csv",), ("orders/订单.parquet",)]
    assert fetch(conn, "select order_id, _file from raw.orders order by _file_seq") == [
        ("OZ", "orders/z.csv"), ("O-GBK", "orders/订单.csv")]
    bad = fetch(conn, "select reason from audit.manifest where file_name = 'orders/订单.parquet'")
    assert bad == [("unreadable",)]


def test_absent_feed_folders_are_fine(conn, inbox):
    """sources.md 'Two kinds of source': a feed folder may be absent; the run still succeeds."""
    write_csv(inbox / "customers" / "part-0001.csv", [customer("K1", "华东重工集团")])
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert fetch(conn, "select customer_id from raw.customers") == [("K1",)]
    assert result.feeds["orders"].files_seen == 0
    assert fetch(conn, "select count(*) from raw.orders") == [(0,)]


def test_empty_feed_folder_is_fine(conn, inbox):
    """sources.md 'Two kinds of source': a feed folder may be empty."""
    (inbox / "survey_responses").mkdir()
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.05)
    assert result.feeds["survey_responses"].files_seen == 0


def test_missing_inbox_raises_input_error(conn, tmp_path):
    """operations.md 'Command-line interface': an unreadable inbox is a user error (InputError)."""
    with pytest.raises(InputError):
        ingest_inbox(conn, tmp_path / "no-such-inbox", "run-1")
    a_file = tmp_path / "inbox.csv"
    a_file.write_text("not a folder")
    with pytest.raises(InputError):
        ingest_inbox(conn, a_file, "run-1")


# --------------------------------------------------------------------------- other formats


def test_a_gzipped_gbk_file_keeps_its_chinese_text(conn, inbox):
    """sources.md: files may be gzipped, and Chinese text may come GBK-encoded; both at once."""
    folder = inbox / "customers"
    gbk = write_csv(folder / "tmp.csv", [customer("K1", "华东重工集团", account_manager="王敏"),
                                         customer("K2", "深圳市腾达贸易有限公司", account_manager="刘洋")],
                    encoding="gbk")
    (folder / "tmp.csv").unlink()
    (folder / "part-0001.csv.gz").write_bytes(gzip.compress(gbk))
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.0)
    assert result.feeds["customers"].rows_loaded == 2
    assert fetch(conn, "select customer_id, customer_name, account_manager from raw.customers order by customer_id") == [
        ("K1", "华东重工集团", "王敏"), ("K2", "深圳市腾达贸易有限公司", "刘洋")]
    assert fetch(conn, "select encoding from audit.manifest") == [("gb18030",)]


def test_gzip_parquet_and_jsonl_orders_load_as_text(conn, inbox):
    """sources.md 'Two kinds of source': .csv.gz, .parquet and .jsonl are read too, and every
    value arrives in raw as text whatever type the file stored."""
    folder = inbox / "orders"
    folder.mkdir()
    csv_text = (
        "order_id,customer_id,order_date,status,list_amount,net_amount,updated_at\n"
        f"O-G1,K1,2024-03-01,completed,110,100,{TS}\n"
        f"O-G2,K1,2024-03-02,open,220.5,200.25,{TS}\n"
    )
    (folder / "part-0001.csv.gz").write_bytes(gzip.compress(csv_text.encode("utf-8")))
    parquet = folder / "part-0002.parquet"
    conn.execute(
        f"""copy (select 'O-P1' as order_id, 'K2' as customer_id, date '2024-03-05' as order_date,
                     'completed' as status, 3000::integer as list_amount, 2500.5::double as net_amount,
                     '{TS}' as updated_at)
            to '{parquet}' (format parquet)"""
    )
    (folder / "part-0003.jsonl").write_text(
        json.dumps(dict(order_id="O-J1", customer_id="K3", order_date="2024-04-02", status="open",
                        list_amount=350, net_amount=300.25, updated_at=TS)) + "\n"
        + json.dumps(dict(order_id="O-J2", customer_id="K3", order_date="2024-04-03", status="returned",
                          list_amount=15, net_amount=12.75, updated_at=TS)) + "\n",
        encoding="utf-8",
    )

    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select count(*) from quarantine.files") == [(0,)]
    assert fetch(conn, "select order_id, order_date, list_amount, net_amount, status, _file "
                       "from raw.orders order by order_id") == [
        ("O-G1", "2024-03-01", "110", "100", "completed", "orders/part-0001.csv.gz"),
        ("O-G2", "2024-03-02", "220.5", "200.25", "open", "orders/part-0001.csv.gz"),
        ("O-J1", "2024-04-02", "350", "300.25", "open", "orders/part-0003.jsonl"),
        ("O-J2", "2024-04-03", "15", "12.75", "returned", "orders/part-0003.jsonl"),
        ("O-P1", "2024-03-05", "3000", "2500.5", "completed", "orders/part-0002.parquet"),
    ]
    # the gzipped CSV keeps CSV line numbers (header = line 1)
    assert fetch(conn, "select _line from raw.orders where _file like '%.csv.gz' order by 1") == [(2,), (3,)]
    assert result.feeds["orders"].files_taken == 3


def test_bad_rows_in_jsonl_are_quarantined_per_row(conn, inbox):
    """sources.md 'Bad input': the row rules apply whatever the file format."""
    (inbox / "orders").mkdir()
    lines = [order("O1"), order("O2", status="shipped")]
    (inbox / "orders" / "part-0001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select order_id from raw.orders") == [("O1",)]
    assert fetch(conn, "select order_id, _reason from quarantine.orders") == [("O2", "not_allowed:status")]


# --------------------------------------------------------------------------- audit


def test_manifest_records_each_taken_file(conn, inbox):
    """sources.md 'Two kinds of source': the pipeline records what it took: name, size,
    checksum and rows."""
    first = write_csv(inbox / "orders" / "part-0001.csv",
                      [order("O1"), order("O2", order_date="2024-02-30"), order("O3")])
    second = write_csv(inbox / "orders" / "part-0002.csv", [order("O4"), order("O5")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    assert fetch(conn, "select run_id, feed, file_name, size_bytes, sha256, rows_read, rows_loaded, "
                       "rows_quarantined, status from audit.manifest order by file_name") == [
        ("run-1", "orders", "orders/part-0001.csv", len(first), hashlib.sha256(first).hexdigest(), 3, 2, 1,
         "loaded"),
        ("run-1", "orders", "orders/part-0002.csv", len(second), hashlib.sha256(second).hexdigest(), 2, 2, 0,
         "loaded"),
    ]


def test_ingest_runs_reports_per_feed_stats_with_updates(conn, inbox):
    """sources.md 'Bad input': each run reports per feed files seen, rows read, loaded, updated
    and quarantined; the same key seen again is an update."""
    folder = inbox / "orders"
    write_csv(folder / "part-0001.csv", [order("O1"), order("O2"), order("O3", net_amount="-1")])
    write_csv(folder / "part-0002.csv", [order("O2", status="returned", updated_at="2024-06-01T08:00:00+08:00"),
                                         order("O4")])
    write_csv(inbox / "customers" / "part-0001.csv", [customer("K1", "华东重工集团")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)

    columns = "files_seen, files_taken, files_skipped, files_quarantined, rows_read, rows_loaded, " \
              "rows_updated, rows_quarantined"
    # orders: 5 rows read, O3 bad, O2 re-delivered by the second file
    assert fetch(conn, f"select {columns} from audit.ingest_runs where run_id = 'run-1' and feed = 'orders'") == [
        (2, 2, 0, 0, 5, 4, 1, 1),
    ]
    assert fetch(conn, f"select {columns} from audit.ingest_runs where run_id = 'run-1' and feed = 'customers'") == [
        (1, 1, 0, 0, 1, 1, 0, 0),
    ]
    # one row per feed of the contract, also for feeds without a folder (interactions: issue 11)
    assert {r[0] for r in fetch(conn, "select feed from audit.ingest_runs where run_id = 'run-1'")} == {
        "customers", "orders", "invoices", "payments", "survey_responses", "fx_rates", "tier_overrides",
        "interactions",
    }

    # a later run re-delivering O1 counts one update in that run
    write_csv(folder / "part-0003.csv", [order("O1", status="cancelled", updated_at="2024-07-01T08:00:00+08:00")])
    ingest_inbox(conn, inbox, "run-2", reject_threshold=1.0)
    assert fetch(conn, f"select {columns} from audit.ingest_runs where run_id = 'run-2' and feed = 'orders'") == [
        (3, 1, 2, 0, 1, 1, 1, 0),
    ]


def test_an_update_is_a_key_seen_again_with_other_values(conn, inbox):
    """sources.md: "the same key seen again is an update" (also on a later line of the same file) and
    "identical re-deliveries change nothing" (not counted as updates, in a new file or on a later line)."""
    folder = inbox / "orders"
    write_csv(folder / "a.csv", [order("O1"), order("O2"),
                                 order("O2", status="completed", updated_at="2024-06-01T08:00:00+08:00"),
                                 order("O3"), order("O3")])  # O2 updated within the file, O3 repeated as is
    write_csv(folder / "b.csv", [order("O1"),  # identical to a.csv's O1
                                 order("O3", net_amount="5")])  # O3 corrected
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    stats = result.feeds["orders"]
    assert (stats.rows_read, stats.rows_loaded, stats.rows_updated) == (7, 7, 2)  # O2 in a.csv, O3 in b.csv
    assert fetch(conn, "select file_name, rows_loaded from audit.manifest order by file_seq") == [
        ("orders/a.csv", 5), ("orders/b.csv", 2)]


def test_example_inbox_loads_without_rejects(conn, tmp_path):
    """The worked example of the spec honours the contract: every row loads, none is quarantined."""
    inbox = tmp_path / "inbox"
    shutil.copytree(EXAMPLE_INBOX, inbox)
    # data rows = lines - 1 header (each file ends with a newline, no quoted line breaks)
    expected = {}
    for path in EXAMPLE_INBOX.glob("*/*.csv"):
        expected[path.parent.name] = expected.get(path.parent.name, 0) + len(path.read_bytes().splitlines()) - 1
    result = ingest_inbox(conn, inbox, "run-1", reject_threshold=0.0)
    for feed, rows in expected.items():
        assert fetch(conn, f"select count(*) from raw.{feed}") == [(rows,)], feed
        assert result.feeds[feed].rows_quarantined == 0


# --------------------------------------------------------------------------- values that parse loosely


@pytest.mark.parametrize(
    "column, value",
    [
        pytest.param("net_amount", "-" + "9" * 31, id="negative-31-digits"),
        pytest.param("net_amount", "9" * 32, id="32-digit-amount"),  # would overflow staging's decimal(38, 8)
        pytest.param("order_date", "infinity", id="date-infinity"),
        pytest.param("order_date", "2024-02-30", id="date-not-in-calendar"),
        pytest.param("updated_at", "infinity", id="timestamp-infinity"),
        pytest.param("updated_at", "epoch", id="timestamp-epoch"),
        pytest.param("updated_at", "2024-05-02 08:00:00 Asia/Tokyo", id="timestamp-named-zone"),
    ],
)
def test_values_outside_the_contract_formats_are_quarantined(conn, inbox, column, value):
    """sources.md 'Columns' / 'Bad input': dates are YYYY-MM-DD, timestamps ISO 8601, amounts
    decimals >= 0; a value breaking that is quarantined, never loaded into raw."""
    write_csv(inbox / "orders" / "part-0001.csv", [order("O1"), order("O2", **{column: value})])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select order_id from raw.orders") == [("O1",)]
    assert fetch(conn, "select order_id from quarantine.orders") == [("O2",)]


def test_unknown_currency_code_is_quarantined(conn, inbox):
    """sources.md: currency is ISO 4217; 'RMB' (colloquial for CNY) and 'XYZ' are not codes."""
    write_csv(inbox / "orders" / "part-0001.csv",
              [order("O1", currency="CNY"), order("O2", currency="RMB"), order("O3", currency="XYZ"),
               order("O4", currency="USD")])
    ingest_inbox(conn, inbox, "run-1", reject_threshold=1.0)
    assert fetch(conn, "select order_id from raw.orders order by 1") == [("O1",), ("O4",)]
    assert fetch(conn, "select order_id, _reason from quarantine.orders order by 1") == [
        ("O2", "bad_currency:currency"), ("O3", "bad_currency:currency")]


def test_status_counts_rows_per_feed_and_month(tmp_path, inbox, capsys, monkeypatch):
    """operations.md: `keyaccounts status` says what was ingested and quarantined per feed and
    month: here orders of March (2 loaded, 1 quarantined) and April (1 loaded)."""
    from keyaccounts.cli import main

    write_csv(inbox / "orders" / "part-0001.csv", [
        order("O1"), order("O2", order_date="2024-03-20"), order("O3", status="shipped"),
        order("O4", order_date="2024-04-02")])
    warehouse = tmp_path / "status.duckdb"
    with duckdb.connect(str(warehouse)) as c:
        ingest_inbox(c, inbox, "run-1", reject_threshold=1.0)
    # piped (not a terminal, no COLUMNS): rich would print 80 columns and cut the cells
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["status", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in out.splitlines() if line.startswith("│ 2024-")}
    assert table == {"2024-03": "2 / 1", "2024-04": "1 / 0"}
    assert "…" not in out and "not_allowed:status" in out
