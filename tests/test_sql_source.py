"""sources.md "SQL databases": orders, invoices and payments read from PostgreSQL (the real
server on 127.0.0.1:5432; each test run creates and drops its own database), incrementally
by updated_at watermark, through the same contract checks as files."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import psycopg2
import pytest

from conftest import one, pg_database, rows, run

TABLES = {
    "orders": """order_id text primary key, customer_id text, contract_id text, order_date date, status text,
                 currency text, list_amount numeric, net_amount numeric, cost_amount numeric,
                 updated_at timestamptz""",
    "invoices": """invoice_id text primary key, customer_id text, order_id text, invoice_date date, due_date date,
                   currency text, amount numeric, updated_at timestamptz""",
    "payments": """payment_id text primary key, invoice_id text, customer_id text, payment_date date, currency text,
                   amount numeric, method text, updated_at timestamptz""",
}


@pytest.fixture(scope="module")
def source_db(example_dir):
    with pg_database("ka_src") as url:
        _fill_source(url, example_dir)
        yield url


def _example_rows(example_dir: Path, table: str):
    """(columns, values) of each row of the example's files of a feed, in delivery order; empty cells
    as NULL. An operational database holds the current row: later rows update earlier ones."""
    for path in sorted((example_dir / "inbox" / table).glob("*.csv")):
        with open(path, encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                yield list(rec), [v if v != "" else None for v in rec.values()]


def _fill_source(url: str, example_dir: Path) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        for table, ddl in TABLES.items():
            cur.execute(f"create table {table} ({ddl})")
            for cols, values in _example_rows(example_dir, table):
                cur.execute(
                    f"insert into {table} ({', '.join(cols)}) values ({', '.join(['%s'] * len(cols))}) "
                    f"on conflict ({cols[0]}) do update set " + ", ".join(f"{c} = excluded.{c}" for c in cols[1:]),
                    values,
                )
    conn.close()


@pytest.fixture(scope="module")
def inbox_without_sql_feeds(example_dir, tmp_path_factory):
    inbox = tmp_path_factory.mktemp("sqlinbox") / "inbox"
    for feed in ("customers", "survey_responses", "fx_rates"):
        shutil.copytree(example_dir / "inbox" / feed, inbox / feed)
    return inbox


@pytest.fixture(scope="module")
def first_run(source_db, inbox_without_sql_feeds, tmp_path_factory):
    wh = tmp_path_factory.mktemp("sqlwh") / "wh.duckdb"
    run(inbox_without_sql_feeds, wh, "2024-06", sql_source=source_db)
    return wh


def test_sql_source_reproduces_the_worked_example(first_run, example_dir):
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        expected = {(r["customer_id"], r["eval_month"]): (r["tier"], r["tier_change"], r["value_score"])
                    for r in csv.DictReader(fh)}
    got = {(r["customer_id"], r["eval_month"]): (r["tier"], r["tier_change"], str(r["value_score"]))
           for r in rows(first_run, "select * from marts.customer_tier_monthly")}
    assert {k: (v[0], v[1]) for k, v in got.items()} == {k: (v[0], v[1]) for k, v in expected.items()}
    assert all(float(got[k][2]) == float(v[2]) for k, v in expected.items())
    marks = {r["feed"]: r["watermark"] for r in rows(first_run, "select * from audit.watermarks")}
    assert set(marks) == {"orders", "invoices", "payments"}
    assert marks["orders"] == "2024-05-02T00:00:00.000000Z"  # latest updated_at, 08:00+08:00 in UTC


def test_incremental_pull_takes_only_changed_rows(first_run, source_db, inbox_without_sql_feeds):
    before = one(first_run, "select count(*) as n from raw.orders")["n"]
    conn = psycopg2.connect(source_db)
    with conn, conn.cursor() as cur:
        # a late correction: K6's USD order is returned after all; a new order arrives for K1
        cur.execute("update orders set status = 'returned', updated_at = '2024-07-03T09:00:00+08:00' "
                    "where order_id = 'O-K6-X3'")
        cur.execute("insert into orders values ('O-K1-NEW', 'K1', null, '2024-06-20', 'completed', 'CNY', 1000, "
                    "1000, null, '2024-07-03T09:30:00+08:00')")
    conn.close()
    run(inbox_without_sql_feeds, first_run, "2024-06", sql_source=source_db)
    pulled = one(first_run, "select rows_read from audit.ingest_runs where feed = 'orders' "
                            "order by finished_at desc limit 1")["rows_read"]
    assert pulled == 2  # only the two changed rows, not the 91 orders again
    assert one(first_run, "select count(*) as n from raw.orders")["n"] == before + 2
    assert one(first_run, "select status from marts.fct_orders where order_id = 'O-K6-X3'")["status"] == "returned"
    k1 = one(first_run, "select revenue_12m from marts.customer_sales_monthly "
                        "where customer_id = 'K1' and eval_month = '2024-06'")
    assert k1["revenue_12m"] == 1_201_000  # 12 x 100,000 + the new order
    assert one(first_run, "select watermark from audit.watermarks where feed = 'orders'")["watermark"] \
        == "2024-07-03T01:30:00.000000Z"
    # invoices and payments did not change: nothing new taken for them
    for feed in ("invoices", "payments"):
        last = one(first_run, f"select rows_read from audit.ingest_runs where feed = '{feed}' "
                              "order by finished_at desc limit 1")
        assert last["rows_read"] == 0


def _cli_run_with_source(inbox: Path, tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "keyaccounts"
    return subprocess.run(
        [str(cli), "run", "--inbox", str(inbox), "--warehouse", str(tmp_path / "wh.duckdb"), "--through", "2024-06",
         "--sql-source", source], capture_output=True, text=True, timeout=120,
    )


def test_unreachable_source_is_one_line_error(inbox_without_sql_feeds, tmp_path):
    proc = _cli_run_with_source(inbox_without_sql_feeds, tmp_path, "postgresql://postgres@127.0.0.1:1/none")
    assert proc.returncode == 7
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith("keyaccounts: error: SQL source postgresql://127.0.0.1:1/none")


# --------------------------------------------------------------------------- any SQLAlchemy database

SQLITE_TABLES = {  # what an operational SQLite holds: dates and timestamps as text, amounts as numbers
    "orders": """order_id text primary key, customer_id text, contract_id text, order_date date, status text,
                 currency text, list_amount numeric, net_amount numeric, cost_amount numeric, updated_at text""",
    "invoices": """invoice_id text primary key, customer_id text, order_id text, invoice_date date, due_date date,
                   currency text, amount numeric, updated_at text""",
    "payments": """payment_id text primary key, invoice_id text, customer_id text, payment_date date, currency text,
                   amount numeric, method text, updated_at text""",
}


@pytest.fixture(scope="module")
def sqlite_run(example_dir, inbox_without_sql_feeds, tmp_path_factory):
    import sqlite3

    root = tmp_path_factory.mktemp("sqlite")
    source = root / "operational.db"
    db = sqlite3.connect(source)
    with db:
        for table, ddl in SQLITE_TABLES.items():
            db.execute(f"create table {table} ({ddl})")
            for cols, values in _example_rows(example_dir, table):
                db.execute(f"insert or replace into {table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
                           values)
    db.close()
    wh = root / "wh.duckdb"
    run(inbox_without_sql_feeds, wh, "2024-06", sql_source=f"sqlite:///{source}")
    return source, wh


def test_a_sqlite_source_reproduces_the_worked_example(sqlite_run, example_dir):
    """sources.md: "PostgreSQL (or any SQLAlchemy-reachable) database": the example's orders,
    invoices and payments read from SQLite give the spec's tier table."""
    _, wh = sqlite_run
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        expected = {(r["customer_id"], r["eval_month"]): (r["tier"], r["tier_change"], D(r["value_score"]))
                    for r in csv.DictReader(fh)}
    got = {(r["customer_id"], r["eval_month"]): (r["tier"], r["tier_change"], r["value_score"])
           for r in rows(wh, "select * from marts.customer_tier_monthly")}
    assert got == expected
    order_ids = set()
    for path in (example_dir / "inbox" / "orders").glob("*.csv"):
        with open(path, encoding="utf-8") as fh:
            order_ids |= {r["order_id"] for r in csv.DictReader(fh)}
    assert one(wh, "select count(*) as n from raw.orders")["n"] == len(order_ids)  # the table's current rows
    marks = {r["feed"]: r["watermark"] for r in rows(wh, "select * from audit.watermarks")}
    assert marks["orders"] == "2024-05-02T08:00:00+08:00"  # a text column: its greatest text, as written


def test_a_sqlite_source_is_pulled_incrementally(sqlite_run, inbox_without_sql_feeds):
    import sqlite3

    source, wh = sqlite_run
    db = sqlite3.connect(source)
    with db:
        db.execute("update orders set status = 'returned', updated_at = '2024-07-03T09:00:00+08:00' "
                   "where order_id = 'O-K6-X3'")
        db.execute("insert into orders values ('O-K1-NEW', 'K1', null, '2024-06-20', 'completed', 'CNY', 1000, "
                   "1000, null, '2024-07-03T09:30:00+08:00')")
    db.close()
    run(inbox_without_sql_feeds, wh, "2024-06", sql_source=f"sqlite:///{source}")
    pulled = one(wh, "select rows_read from audit.ingest_runs where feed = 'orders' "
                     "order by finished_at desc limit 1")["rows_read"]
    assert pulled == 2
    assert one(wh, "select status from marts.fct_orders where order_id = 'O-K6-X3'")["status"] == "returned"
    assert one(wh, "select revenue_12m from marts.customer_sales_monthly "
                   "where customer_id = 'K1' and eval_month = '2024-06'")["revenue_12m"] == 1_201_000


def test_a_database_without_its_driver_is_one_line_error(inbox_without_sql_feeds, tmp_path):
    proc = _cli_run_with_source(inbox_without_sql_feeds, tmp_path, "mysql://reader@127.0.0.1:3306/erp")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith(
        "keyaccounts: error: SQL source mysql://127.0.0.1:3306/erp: no SQLAlchemy dialect or driver for 'mysql'")
    # a mistyped SQLite path is said, not created as an empty database
    missing = tmp_path / "no-such.db"
    proc = _cli_run_with_source(inbox_without_sql_feeds, tmp_path, f"sqlite:///{missing}")
    assert proc.returncode == 3 and f"no SQLite database at {missing}" in proc.stderr.splitlines()[0]
    assert not missing.exists()
