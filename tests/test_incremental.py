"""Incremental staging (macros/incremental.sql): a run after new files re-stages only the keys
that can have changed, and ends with exactly what a full build of the same inbox gives.

Real dbt builds on real DuckDB files: the worked example plus a EUR order waiting for its rate
is published, then new files arrive (a returned order, an older version that must lose, a new
order, the missing rate, a new payment). The incremental warehouse is compared with a fresh
full build of the same inbox, table by table.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from conftest import rows, run, write_inbox

# source_file_seq: the delivery number of a row's file, which depends on how files were grouped into runs
BOOKKEEPING = ("_raw_watermark", "_stg_watermark", "_build_key", "source_file_seq")
STAGING = ("stg_orders", "stg_invoices", "stg_payments")
INTERMEDIATE = ("int_orders_completed", "int_invoices_counted", "int_payments_applied", "int_invoice_payment_steps",
                "int_invoice_on_time", "int_invoice_open_pieces")
MARTS = ("fct_orders", "fct_invoices", "fct_payments", "customer_sales_monthly", "customer_receivables_monthly",
         "customer_value_monthly", "customer_tier_monthly", "receivables_exceptions", "tier_summary_monthly")
LATER = "2024-06-03T09:00:00+08:00"

EXTRA = {  # with the first delivery: a EUR order of K6 in May, whose rate is not there yet
    "orders/part-0003.csv": """
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-K6-EUR,K6,,2024-05-06,completed,EUR,1000,1000,600,2024-05-07T08:00:00+08:00
    """,
}
INCREMENT = {
    "orders/part-9001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-K1-202302,K1,C-K1-2023,2023-02-15,returned,CNY,110000.0,100000,70000.0,{LATER}
        O-K1-202303,K1,C-K1-2023,2023-03-15,cancelled,CNY,110000.0,100000,70000.0,2024-01-01T08:00:00+08:00
        O-K2-NEW,K2,,2024-05-20,completed,CNY,5000,4800.5,,{LATER}
    """,
    "fx_rates/part-9001.csv": """
        currency,month,rate_to_reporting
        EUR,2024-05,7.8125
    """,
    "payments/part-9001.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P-K1-EXTRA,I-K1-202301,K1,2024-05-10,CNY,50,bank_transfer,{LATER}
        P-K1-202305,I-K1-202303,K1,2023-06-12,CNY,100000.0,bank_transfer,{LATER}
    """,
    # I-K1-202302 is re-dated past the month built (it leaves every receivables measure); I-K1-202304
    # is corrected to a lower amount (its payment of 100000 now overpays it)
    "invoices/part-9001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I-K1-202302,K1,O-K1-202302,2024-07-01,2024-07-31,CNY,100000,{LATER}
        I-K1-202304,K1,O-K1-202304,2023-04-15,2023-05-15,CNY,90000,{LATER}
    """,
}


def _table(wh, table: str) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as conn:
        cols = [c for (c,) in conn.execute(
            "select column_name from information_schema.columns where table_name = ? and table_schema in "
            "('staging', 'intermediate', 'marts') order by ordinal_position", [table]).fetchall() if c not in BOOKKEEPING]
        schema = "staging" if table.startswith("stg_") else "intermediate" if table.startswith("int_") else "marts"
        return conn.execute(f"select {', '.join(cols)} from {schema}.{table} order by all").fetchall()


@pytest.fixture(scope="module")
def warehouses(example_dir, tmp_path_factory):
    """(incremental warehouse, full warehouse, each staging table's watermark after the first run, inbox)."""
    root = tmp_path_factory.mktemp("incremental")
    inbox = root / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    write_inbox(inbox, EXTRA)
    inc = root / "inc" / "wh.duckdb"
    run(inbox, inc, "2024-05")
    first = {t: rows(inc, f"select max(_raw_watermark) as w from staging.{t}")[0]["w"] for t in STAGING}
    first.update({t: rows(inc, f"select max(_stg_watermark) as w from intermediate.{t}")[0]["w"]
                  for t in INTERMEDIATE})
    write_inbox(inbox, INCREMENT)
    run(inbox, inc, "2024-05")
    full = root / "full" / "wh.duckdb"
    run(inbox, full, "2024-05")
    return inc, full, first, inbox


@pytest.mark.parametrize("table", STAGING + INTERMEDIATE + MARTS)
def test_an_incremental_run_equals_a_full_build(warehouses, table):
    inc, full, _, _ = warehouses
    assert _table(inc, table) == _table(full, table)


def test_only_new_and_changed_keys_are_restaged(warehouses):
    inc, _, first, _ = warehouses
    restaged = {r["order_id"] for r in rows(inc, "select order_id from staging.stg_orders where _raw_watermark > ?",
                                            [first["stg_orders"]])}
    # the returned order, the older version (re-read, and it loses), the new order, the EUR order
    # whose rate arrived; none of the other orders of the example
    assert restaged == {"O-K1-202302", "O-K1-202303", "O-K2-NEW", "O-K6-EUR"}
    orders = {r["order_id"]: r for r in rows(inc, "select * from staging.stg_orders")}
    assert orders["O-K1-202302"]["status"] == "returned"
    assert orders["O-K1-202303"]["status"] == "completed"  # its newer version of the first delivery wins
    assert str(orders["O-K6-EUR"]["net_amount_reporting"]) == "7812.5000000000000000"  # 1000 EUR x 7.8125
    payments = {r["payment_id"] for r in rows(inc, "select payment_id from staging.stg_payments "
                                                   "where _raw_watermark > ?", [first["stg_payments"]])}
    assert payments == {"P-K1-EXTRA", "P-K1-202305"}
    invoices = {r["invoice_id"] for r in rows(inc, "select invoice_id from staging.stg_invoices "
                                                   "where _raw_watermark > ?", [first["stg_invoices"]])}
    assert invoices == {"I-K1-202302", "I-K1-202304"}  # no invoice is in EUR: the rate re-stages none


def test_the_intermediates_rebuild_only_the_changed_keys(warehouses):
    """Rows rebuilt by the second run carry its watermark; the others keep the first run's."""
    inc, _, first, _ = warehouses

    def rebuilt(table, key):
        return {r[key] for r in rows(inc, f"select {key} from intermediate.{table} where _stg_watermark > ?",
                                     [first[table]])}

    # the returned order leaves; the re-read older version, the new order and the EUR order whose
    # rate arrived are rebuilt
    assert rebuilt("int_orders_completed", "order_id") == {"O-K1-202303", "O-K2-NEW", "O-K6-EUR"}
    assert "O-K1-202302" not in {r["order_id"] for r in rows(inc, "select order_id from intermediate.int_orders_completed")}
    # the invoices of the new payment (202301), of the moved payment (the one it left, 202305, and the
    # one it pays now, 202303) and the corrected one (202304); 202302 is re-dated past the month and leaves
    assert rebuilt("int_invoice_on_time", "invoice_id") == {"I-K1-202301", "I-K1-202303", "I-K1-202304",
                                                            "I-K1-202305"}
    assert rebuilt("int_invoices_counted", "invoice_id") == {"I-K1-202304"}
    # the new and the moved payment, and the payments of the two re-staged invoices
    assert rebuilt("int_payments_applied", "payment_id") == {"P-K1-EXTRA", "P-K1-202305", "P-K1-202302",
                                                             "P-K1-202304"}
    n_invoices = rows(inc, "select count(*) as n from intermediate.int_invoice_on_time")[0]["n"]
    assert n_invoices > 10  # the others were kept, not rebuilt


def test_a_changed_var_restages_every_row(warehouses, tmp_path):
    inc, _, _, inbox = warehouses
    wh = tmp_path / "wh.duckdb"
    shutil.copy(inc, wh)
    run(inbox, wh, "2024-05", dbt_vars={"business_time_zone": "UTC"})
    keys = rows(wh, "select distinct _build_key from staging.stg_orders")
    assert [k["_build_key"] for k in keys] == ["v2|CNY|CNY|UTC"]  # staging_version() 2, reporting and default currency, zone
    n_raw = rows(wh, "select count(distinct trim(order_id)) as n from raw.orders")[0]["n"]
    assert rows(wh, "select count(*) as n from staging.stg_orders")[0]["n"] == n_raw


def test_incremental_staging_on_postgres_equals_duckdb(warehouses, example_dir, tmp_path):
    """The same deliveries, in the same order, on the PostgreSQL serving target: every key is
    staged from the same winning source row as in the incremental DuckDB warehouse."""
    import psycopg2

    from conftest import pg_database

    inc = warehouses[0]
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    write_inbox(inbox, EXTRA)
    keys = {"stg_orders": "order_id", "stg_invoices": "invoice_id", "stg_payments": "payment_id"}
    with pg_database("ka_incremental") as url:
        run(inbox, url, "2024-05", exports_dir=tmp_path / "exports")
        write_inbox(inbox, INCREMENT)
        run(inbox, url, "2024-05", exports_dir=tmp_path / "exports")
        conn = psycopg2.connect(url)
        try:
            for table, key in keys.items():
                sql = f"select {key}, source_file, source_line, fx_rate is null from staging.{table}" \
                    if table != "stg_payments" else f"select {key}, source_file, source_line from staging.{table}"
                with duckdb.connect(str(inc), read_only=True) as d:
                    want = sorted(d.execute(sql).fetchall())
                with conn.cursor() as cur:
                    cur.execute(sql)
                    got = sorted(cur.fetchall())
                assert got == want, table
        finally:
            conn.close()
