"""metrics.md "Arithmetic": converted amounts are not rounded, V is exact at any realistic size,
and only published columns are rounded (csat_12m and dso at 4 decimals, docs/decisions.md).

- Rates with 16 decimals (what Python writes for 1/7.1) convert at their full precision: staging
  keeps rates as decimal(38, 18) and every conversion (orders, invoices, payments at the
  invoice's and at their own month's rate) goes through one macro, to_reporting.
- Customers with about 10^15 of revenue build, and their value_score is V rounded once.
- csat_12m and dso are published at 4 decimals.

Every expected value is computed here, with Python's decimal module, from the rows below. The
same inbox is built on PostgreSQL, which must give the same values.
"""

from __future__ import annotations

import shutil
from decimal import ROUND_HALF_UP, Decimal as D, localcontext

import duckdb
import psycopg2
import pytest

from conftest import pg_database, rows, run, write_inbox

TS = "2024-06-05T08:00:00+08:00"
THROUGH = "2024-06"
# source_file_seq: the delivery number of a row's file, which depends on how files were grouped into runs
BOOKKEEPING = {"_raw_watermark", "_stg_watermark", "_build_key", "source_file_seq"}

# 16-decimal rates: repr(1 / 7.1) without its 17th digit, and two made-up ones
USD_JAN = D("0.1408450704225352")
USD_MAR = D("0.1377410468319559")
EUR_FEB = D("7.8912345678901234")
GBP_FEB = D("7.1428571428571429")  # 50/7 at 16 decimals: products of 2-decimal amounts need 18

CONVERSION = {  # X1, X2: foreign currency at 16-decimal rates; C1: csat and dso with repeating decimals
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        X1,Sixteen Decimals Ltd,retail,local,East,王敏,2022-01-01,{TS}
        X2,Large Euro Ltd,retail,national,East,王敏,2022-01-01,{TS}
        C1,Repeating Ratios Ltd,retail,local,East,王敏,2022-01-01,{TS}
        X3,Split Payments Ltd,retail,local,East,王敏,2022-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-X1,X1,,2024-01-10,completed,USD,1200000.00,1000000.39,600000.01,{TS}
        O-X2,X2,,2024-02-10,completed,EUR,987654321098.76,987654321098.76,,{TS}
        O-C1,C1,,2024-03-10,completed,CNY,300,300,,{TS}
    """,
    "invoices/part-0001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I-X1,X1,O-X1,2024-01-10,2024-02-09,USD,1000000.39,{TS}
        I-C1,C1,O-C1,2024-05-01,2024-07-31,CNY,100,{TS}
        I-X3,X3,,2024-02-05,2024-03-05,GBP,1000.09,{TS}
    """,
    "payments/part-0001.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P-X1,I-X1,X1,2024-03-05,USD,1000000.39,bank_transfer,{TS}
        P-X3a,I-X3,X3,2024-02-20,GBP,333.36,bank_transfer,{TS}
        P-X3b,I-X3,X3,2024-03-01,GBP,666.73,bank_transfer,{TS}
    """,
    "survey_responses/part-0001.csv": f"""
        response_id,customer_id,survey_id,submitted_at,nps_score,satisfaction,product_quality,delivery,after_sales_service,responsiveness,comment,respondent_name,respondent_phone,respondent_email,updated_at
        S1,C1,W1,2024-04-01T10:00:00+08:00,,5,,,,,,,,,{TS}
        S2,C1,W1,2024-04-02T10:00:00+08:00,,4,,,,,,,,,{TS}
        S3,C1,W1,2024-04-03T10:00:00+08:00,,4,,,,,,,,,{TS}
    """,
    "fx_rates/part-0001.csv": f"""
        currency,month,rate_to_reporting
        USD,2024-01,{USD_JAN}
        USD,2024-03,{USD_MAR}
        EUR,2024-02,{EUR_FEB}
        GBP,2024-02,{GBP_FEB}
    """,
}

BIG = {  # revenue of about 10^15 (CNY; one row holds at most 10^15): B1 no history, B2 growth clamped at 1.5 and e = 0.95, B3 unclamped
    "customers/part-0002.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        B1,Big Global Ltd,retail,global,East,王敏,2022-01-01,{TS}
        B2,Big National Ltd,retail,national,East,王敏,2022-01-01,{TS}
        B3,Big Local Ltd,retail,local,East,王敏,2022-01-01,{TS}
    """,
    "orders/part-0002.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-B1-1,B1,,2024-01-20,completed,CNY,999999999999999.99,999999999999999.99,,{TS}
        O-B1-2,B1,,2024-02-20,completed,CNY,234567890123456.79,234567890123456.79,,{TS}
        O-B2-OLD,B2,,2023-01-20,completed,CNY,600000000000000.00,600000000000000.00,,{TS}
        O-B2,B2,,2024-01-20,completed,CNY,987654321987654.33,987654321987654.33,,{TS}
        O-B3-OLD,B3,,2023-01-20,completed,CNY,800000000000000,800000000000000,,{TS}
        O-B3,B3,,2024-01-20,completed,CNY,1000000000000000,1000000000000000,,{TS}
    """,
    "invoices/part-0002.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I-B2,B2,O-B2,2023-12-01,2024-01-31,CNY,1000000000000000.00,{TS}
    """,
    "payments/part-0002.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P-B2,I-B2,B2,2024-02-15,CNY,900000000000000.00,bank_transfer,{TS}
    """,
    # a survey feed, as in the PostgreSQL build of both inboxes (a feed never delivered gives null
    # response counts, not 0): one answer of a customer not in this master, which counts for nobody
    "survey_responses/part-0002.csv": f"""
        response_id,customer_id,survey_id,submitted_at,nps_score,satisfaction,product_quality,delivery,after_sales_service,responsiveness,comment,respondent_name,respondent_phone,respondent_email,updated_at
        S-BZ,BZ,W1,2024-04-01T10:00:00+08:00,,5,,,,,,,,,{TS}
    """,
}


def q(value: D, places: int) -> D:
    """value rounded half away from zero to `places` decimals"""
    with localcontext(prec=80):
        return value.quantize(D(1).scaleb(-places), rounding=ROUND_HALF_UP)


def converted(amount: str, rate: D) -> D:
    """metrics.md: the converted amount is not rounded; money is decimal(38, 16)"""
    with localcontext(prec=80):  # exact: 38 + 18 digits at most
        return q(D(amount) * rate, 16)


def value_score(a: str, b: D, d: D, e: str) -> D:
    with localcontext(prec=80):
        return q(D(a) * (D("0.7") * b + D("0.3") * d) * D(e), 2)


# ----------------------------------------------------------------------------- warehouses

class Duck:
    def __init__(self, path, inbox=None):
        self.path, self.inbox = path, inbox

    def rows(self, sql, params=None):
        return rows(self.path, sql, params)


class Pg:
    def __init__(self, url):
        self.url = url

    def rows(self, sql, params=None):
        conn = psycopg2.connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params)
                names = [d.name for d in cur.description]
                return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def duck_conversion(tmp_path_factory):
    root = tmp_path_factory.mktemp("conversion")
    inbox = write_inbox(root / "inbox", CONVERSION)
    run(inbox, root / "wh.duckdb", THROUGH)
    return Duck(root / "wh.duckdb", inbox)


@pytest.fixture(scope="module")
def duck_big(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    inbox = write_inbox(root / "inbox", BIG)
    run(inbox, root / "wh.duckdb", THROUGH)
    return Duck(root / "wh.duckdb")


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """both inboxes together, on PostgreSQL"""
    root = tmp_path_factory.mktemp("conversion_pg")
    inbox = write_inbox(root / "inbox", {**CONVERSION, **BIG})
    with pg_database("ka_conv") as url:
        run(inbox, url, THROUGH, exports_dir=root / "exports")
        yield Pg(url)


@pytest.fixture(params=["duckdb", "postgres"])
def conv(request):
    return request.getfixturevalue("duck_conversion" if request.param == "duckdb" else "pg")


@pytest.fixture(params=["duckdb", "postgres"])
def big(request):
    return request.getfixturevalue("duck_big" if request.param == "duckdb" else "pg")


def one(wh, sql, params=None) -> dict:
    result = wh.rows(sql, params)
    assert len(result) == 1, result
    return result[0]


def monthly(wh, table, customer, month=THROUGH) -> dict:
    return one(wh, f"select * from marts.{table} where customer_id = ? and eval_month = ?", [customer, month])


# ----------------------------------------------------------------------------- 1. exact conversion

def test_rates_are_staged_with_all_their_decimals(conv):
    got = {(r["currency"], r["rate_month"]): D(r["rate_to_reporting"])
           for r in conv.rows("select * from staging.stg_fx_rates")}
    assert got == {("USD", "2024-01"): USD_JAN, ("USD", "2024-03"): USD_MAR, ("EUR", "2024-02"): EUR_FEB,
                   ("GBP", "2024-02"): GBP_FEB}


def test_orders_convert_at_the_full_rate(conv):
    o = one(conv, "select * from marts.fct_orders where order_id = 'O-X1'")
    assert o["fx_rate"] == USD_JAN
    # 1,000,000.39 x 0.1408450704225352 = 140,845.125352112664788728 -> 140,845.1253521126647887
    # (the rate at 8 decimals, 0.14084507, gave 140,845.1249295773)
    assert o["net_amount_reporting"] == converted("1000000.39", USD_JAN) == D("140845.1253521126647887")
    assert o["list_amount_reporting"] == converted("1200000.00", USD_JAN)
    assert o["cost_amount_reporting"] == converted("600000.01", USD_JAN)
    # an amount near 10^12 at a 16-decimal rate: the product has 24 decimals and must not overflow
    x2 = one(conv, "select * from marts.fct_orders where order_id = 'O-X2'")
    assert x2["fx_rate"] == EUR_FEB
    assert x2["net_amount_reporting"] == converted("987654321098.76", EUR_FEB)


def test_revenue_and_value_score_use_the_unrounded_conversion(conv):
    b = converted("1000000.39", USD_JAN)
    s = monthly(conv, "customer_sales_monthly", "X1")
    assert s["revenue_12m"] == b
    v = monthly(conv, "customer_value_monthly", "X1")
    # local (a = 1), no previous revenue (d = b), invoice fully paid (e = 1): V = b = 140,845.1253... -> .13
    assert v["value_score"] == value_score("1.0", b, b, "1.00") == D("140845.13")
    b2 = converted("987654321098.76", EUR_FEB)
    assert monthly(conv, "customer_value_monthly", "X2")["value_score"] == value_score("1.1", b2, b2, "1.00")


def test_invoices_and_payments_convert_at_the_full_rate(conv):
    i = one(conv, "select * from marts.fct_invoices where invoice_id = 'I-X1'")
    assert i["fx_rate"] == USD_JAN and i["amount_reporting"] == converted("1000000.39", USD_JAN)
    p = one(conv, "select * from marts.fct_payments where payment_id = 'P-X1'")
    assert p["invoice_fx_rate"] == USD_JAN
    assert p["amount_reporting"] == converted("1000000.39", USD_JAN)  # at the invoice's rate
    assert p["amount_reporting_at_payment_month"] == converted("1000000.39", USD_MAR)
    r = monthly(conv, "customer_receivables_monthly", "X1")
    assert r["billed_due_12m"] == r["collected_12m"] == converted("1000000.39", USD_JAN)
    assert r["collection_rate_12m"] == D("1.0000")


def test_a_foreign_invoice_paid_in_two_parts_is_exactly_collected(conv):
    """metrics.md: "a fully paid foreign invoice is exactly 100% collected". 333.36 and 666.73 GBP
    each convert to 18 decimals; rounded one by one at money's 16 they sum to 1e-16 less than the
    invoice's own conversion, so the cap is taken in GBP and converted once."""
    assert converted("333.36", GBP_FEB) + converted("666.73", GBP_FEB) != converted("1000.09", GBP_FEB)
    billed = converted("1000.09", GBP_FEB)
    feb = monthly(conv, "customer_receivables_monthly", "X3", "2024-02")  # due in March: open, one part paid
    assert feb["outstanding_end"] == billed - converted("333.36", GBP_FEB) and feb["open_invoices"] == 1
    r = monthly(conv, "customer_receivables_monthly", "X3")
    assert r["billed_due_12m"] == r["collected_12m"] == r["paid_on_time_12m"] == billed
    assert (r["collection_rate_12m"], r["on_time_rate_12m"]) == (D("1.0000"), D("1.0000"))
    assert r["outstanding_end"] == 0 and r["open_invoices"] == 0
    assert [r[f"aging_{b}"] for b in ("not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90",
                                      "overdue_90_plus")] == [0] * 5
    detail = monthly(conv, "customer_receivables_detail", "X3")
    assert (detail["collected_by_cutoff"], detail["outstanding_at_cutoff"], detail["aging_bucket"]) == (billed, 0, "paid")


def test_postgres_stages_and_converts_like_duckdb(duck_conversion, duck_big, pg):
    for table, key in (("staging.stg_orders", "order_id"), ("staging.stg_invoices", "invoice_id"),
                       ("intermediate.int_payments_applied", "payment_id"), ("marts.fct_payments", "payment_id"),
                       ("marts.customer_value_monthly", "customer_id, eval_month"),
                       ("marts.customer_receivables_monthly", "customer_id, eval_month"),
                       ("marts.customer_loyalty_monthly", "customer_id, eval_month")):
        duck = [{k: v for k, v in r.items() if k not in BOOKKEEPING}
                for wh in (duck_conversion, duck_big) for r in wh.rows(f"select * from {table} order by {key}")]
        on_pg = [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in pg.rows(f"select * from {table}")]
        if "eval_month" in key:  # the PostgreSQL build starts in 2023-01 for everyone (B2, B3)
            months = {(r["customer_id"], r["eval_month"]) for r in duck}
            on_pg = [r for r in on_pg if (r["customer_id"], r["eval_month"]) in months]

        def norm(records):
            return sorted((tuple((k, D(str(v)).normalize() if isinstance(v, (D, int, float)) and not isinstance(v, bool)
                                  else None if v is None else str(v)) for k, v in sorted(r.items()))
                           for r in records), key=repr)

        assert norm(on_pg) == norm(duck), table


def _tables(path, by_name: bool = False) -> dict[str, tuple[list, list]]:
    """every staging, intermediate and mart table: (columns with types, sorted rows), bookkeeping aside;
    by_name: columns in name order (a column an upgrade added comes last in its table)"""
    out = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        for schema, table in conn.execute(
                "select table_schema, table_name from information_schema.tables where table_schema in "
                "('staging', 'intermediate', 'marts') and table_name <> 'published_tiers'").fetchall():
            cols = [(c, t) for c, t in conn.execute(
                "select column_name, data_type from information_schema.columns where table_schema = ? "
                "and table_name = ? order by ordinal_position", [schema, table]).fetchall() if c not in BOOKKEEPING]
            cols = sorted(cols) if by_name else cols
            data = conn.execute(f"select {', '.join(c for c, _ in cols)} from {schema}.{table} order by all").fetchall()
            out[f"{schema}.{table}"] = (cols, data)
    return out


def test_a_warehouse_of_staging_version_1_is_restaged(duck_conversion, tmp_path):
    """An existing warehouse, staged before rates kept their decimals (staging_version 1: fx_rate
    decimal(38, 8), amounts converted at the rounded rate), is re-staged by the next run: the
    incremental tables change the column's type and end equal to a fresh build."""
    wh = tmp_path / "wh.duckdb"
    shutil.copy(duck_conversion.path, wh)
    with duckdb.connect(str(wh)) as conn:
        for table, col in (("staging.stg_orders", "fx_rate"), ("staging.stg_invoices", "fx_rate"),
                           ("intermediate.int_invoices_counted", "fx_rate"),
                           ("intermediate.int_payments_applied", "invoice_fx_rate")):
            conn.execute(f"alter table {table} alter column {col} set data type decimal(38, 8)")
        conn.execute("update staging.stg_orders set net_amount_reporting = net_amount * fx_rate, "
                     "list_amount_reporting = list_amount * fx_rate, cost_amount_reporting = cost_amount * fx_rate")
        conn.execute("update staging.stg_invoices set amount_reporting = amount * fx_rate")
        for table in ("staging.stg_orders", "staging.stg_invoices", "staging.stg_payments",
                      "intermediate.int_orders_completed", "intermediate.int_invoices_counted",
                      "intermediate.int_payments_applied", "intermediate.int_invoice_payment_steps",
                      "intermediate.int_invoice_on_time", "intermediate.int_invoice_open_pieces"):
            conn.execute(f"update {table} set _build_key = replace(_build_key, 'v2|', 'v1|')")
    run(duck_conversion.inbox, wh, THROUGH)
    assert rows(wh, "select distinct _build_key as k from staging.stg_orders")[0]["k"].startswith("v2|")
    upgraded, fresh = _tables(wh), _tables(duck_conversion.path)
    assert set(upgraded) == set(fresh)
    for table, (cols, data) in fresh.items():
        assert upgraded[table][0] == cols, table
        assert upgraded[table][1] == data, table


def test_a_warehouse_of_intermediate_version_1_is_rebuilt(duck_conversion, tmp_path):
    """Intermediate version 2 caps payments in the invoice's currency, which int_invoices_counted now
    carries (`amount`). A warehouse built before it gets the column added and every intermediate
    rebuilt by the next run, without --full-refresh: dbt-duckdb's add column, in the same transaction as
    the pre-hook's delete, made DuckDB refuse the commit on every retry."""
    wh = tmp_path / "wh.duckdb"
    shutil.copy(duck_conversion.path, wh)
    with duckdb.connect(str(wh)) as conn:
        conn.execute("alter table intermediate.int_invoices_counted drop column amount")
        for table in ("int_orders_completed", "int_invoices_counted", "int_payments_applied",
                      "int_invoice_payment_steps", "int_invoice_on_time", "int_invoice_open_pieces"):
            conn.execute(f"update intermediate.{table} set _build_key = replace(_build_key, '|i2|', '|i1|')")
            # what version 1 held is gone whatever it was: the rebuild must not keep a row of it
            conn.execute(f"delete from intermediate.{table} where rowid % 2 = 0")
    run(duck_conversion.inbox, wh, THROUGH)
    assert {r["k"].split("|")[-2] for r in rows(wh, "select distinct _build_key as k from "
                                                   "intermediate.int_invoices_counted")} == {"i2"}
    assert _tables(wh, by_name=True) == _tables(duck_conversion.path, by_name=True)


# ----------------------------------------------------------------------------- 2. V at 10^15

def test_customer_without_history_at_ten_to_the_fifteen(big):
    b = D("999999999999999.99") + D("234567890123456.79")
    v = monthly(big, "customer_value_monthly", "B1")
    assert v["b_current"] == v["d_potential"] == b
    # global: V = 1.2 x (0.7 b + 0.3 b) = 1,481,481,468,148,148.136 -> .14
    assert v["value_score"] == value_score("1.2", b, b, "1.00") == D("1481481468148148.14")


def test_clamped_growth_and_low_collection_at_ten_to_the_fifteen(big):
    b = D("987654321987654.33")
    v = monthly(big, "customer_value_monthly", "B2")
    # 1 + growth = b / 600,000,000,000,000 = 1.646... -> clamped at 1.5; collected 0.9 of billed -> e = 0.95
    assert v["d_potential"] == D("1.5") * b
    assert v["e_correction"] == D("0.95")
    assert v["value_score"] == value_score("1.1", b, D("1.5") * b, "0.95")
    r = monthly(big, "customer_receivables_monthly", "B2")
    assert r["outstanding_end"] == D("100000000000000")
    assert r["dso"] == q(D("100000000000000") / b * 365, 4)


def test_unclamped_growth_at_ten_to_the_fifteen(big):
    v = monthly(big, "customer_value_monthly", "B3")
    # d = 10^15 x 10^15 / (8 x 10^14) = 1.25 x 10^15; V = 0.7 x 10^15 + 0.3 x 1.25 x 10^15
    b, d = D("1000000000000000"), D("1250000000000000")
    assert v["d_potential"] == d
    assert v["value_score"] == value_score("1.0", b, d, "1.00") == D("1075000000000000.00")


# ----------------------------------------------------------------------------- 3. csat and dso at 4 decimals

def test_csat_published_at_four_decimals(conv):
    loy = monthly(conv, "customer_loyalty_monthly", "C1")
    # (5 + 4 + 4) / 3 = 4.3333...
    assert loy["csat_12m"] == q(D(13) / D(3), 4) == D("4.3333")
    assert loy["csat_12m"].as_tuple().exponent == -4


def test_dso_published_at_four_decimals(conv):
    r = monthly(conv, "customer_receivables_monthly", "C1")
    # outstanding 100 (I-C1, not yet due) / revenue 300 x 365 = 121.6666...
    assert r["outstanding_end"] == D("100")
    assert r["dso"] == q(D(100) / D(300) * 365, 4) == D("121.6667")
    assert r["dso"].as_tuple().exponent == -4


def test_ingest_checks_decimals_at_the_scale_staging_keeps():
    """The scale ingest checks a decimal column at (contract.Column.scale) is the scale of the
    type its staging model casts it to (numbers.sql), so a value ingest accepts is never
    rounded by staging. The two live in Python and in SQL; this ties them per column."""
    import re
    from pathlib import Path

    from keyaccounts.ingest.contract import FEEDS

    root = Path(__file__).resolve().parents[1] / "dbt_project"
    macros = (root / "macros" / "numbers.sql").read_text(encoding="utf-8")
    type_scale = {name: int(re.search(rf"macro {name}\(\) -%\}}\s*decimal\(38, (\d+)\)", macros).group(1))
                  for name in ("input_decimal_type", "rate_type")}
    cast_type = {"cast_input_decimal": "input_decimal_type", "cast_input_rate": "rate_type"}
    checked = 0
    for feed in FEEDS.values():
        for column in (c for c in feed.columns if c.kind == "decimal"):
            model = (root / "models" / "staging" / f"stg_{feed.name}.sql").read_text(encoding="utf-8")
            casts = re.findall(rf"(cast_input_\w+)\(\"[^\"]*\b{column.name}\b[^\"]*\"\)", model)
            assert len(casts) == 1, (feed.name, column.name, casts)
            assert column.scale == type_scale[cast_type[casts[0]]], (feed.name, column.name)
            checked += 1
    assert checked == 6  # orders x3, invoices, payments, fx_rates


# ----------------------------------------------------------------------------- 4. a blank currency is CNY

BLANK_CURRENCY = {  # reporting in USD; K1's order and invoice leave currency empty, K2's say CNY
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        K1,Blank Currency Ltd,retail,local,East,王敏,2022-01-01,{TS}
        K2,Written Currency Ltd,retail,local,East,王敏,2022-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O1,K1,,2024-03-05,completed,,700,700,,{TS}
        O2,K2,,2024-03-05,completed,CNY,700,700,,{TS}
    """,
    "invoices/part-0001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I1,K1,O1,2024-03-05,2024-04-04,,700,{TS}
    """,
    "payments/part-0001.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P1,I1,K1,2024-03-20,,350,bank_transfer,{TS}
    """,
    "fx_rates/part-0001.csv": """
        currency,month,rate_to_reporting
        CNY,2024-03,0.14
    """,
}


def test_a_blank_currency_is_cny_whatever_the_reporting_currency(tmp_path):
    """sources.md: orders' `currency` is "ISO 4217, default CNY". With USD as the reporting currency a
    blank order or invoice is still CNY, converted at CNY's rate (700 x 0.14 = 98 USD), not taken as
    700 USD; its payment is in the invoice's currency."""
    inbox = write_inbox(tmp_path / "inbox", BLANK_CURRENCY)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    run(inbox, warehouse, "2024-03", dbt_vars={"reporting_currency": "USD"})
    orders = {r["order_id"]: r for r in rows(warehouse, "select * from marts.fct_orders")}
    assert orders["O1"]["currency"] == "CNY" and orders["O1"]["net_amount_reporting"] == D("98")
    assert orders["O2"]["net_amount_reporting"] == D("98")
    sales = {r["customer_id"]: r["revenue_12m"] for r in rows(
        warehouse, "select customer_id, revenue_12m from marts.customer_sales_monthly where eval_month = '2024-03'")}
    assert sales == {"K1": D("98"), "K2": D("98")}
    invoice = rows(warehouse, "select currency, amount_reporting from marts.fct_invoices")[0]
    assert invoice["currency"] == "CNY" and invoice["amount_reporting"] == D("98")
    payment = rows(warehouse, "select currency, is_applied from marts.fct_payments")[0]
    assert payment["currency"] == "CNY" and payment["is_applied"]
