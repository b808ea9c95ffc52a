"""The real public data sets (shared/data/real) through `import_sample` and the real pipeline.

Each data set is imported into a temporary inbox, run through ingest -> dbt -> publish up to
its last month, and the marts are checked against facts computed here, independently, from
the source files with pandas (never values copied from a pipeline run). A data set whose
source files are absent is skipped with the reason.
"""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from keyaccounts.config import RunConfig
from keyaccounts.errors import InputError
from keyaccounts.ingest.contract import FEEDS
from keyaccounts.pipeline import run_pipeline
from keyaccounts.samples import SAMPLES, default_data_dir, import_sample

DATA_DIR = default_data_dir()
D = Decimal


def _q4(value) -> Decimal:
    return D(str(value)).quantize(D("0.0001"), ROUND_HALF_UP)


def _require(name: str) -> None:
    missing = [f for f in SAMPLES[name].files if not (DATA_DIR / f).is_file()]
    if missing:
        pytest.skip(f"{name}: source file(s) {', '.join(missing)} absent from {DATA_DIR}")


def _src(file: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / file, dtype=str, keep_default_na=False, **kwargs)


def _dec_sum(values) -> Decimal:
    return sum((D(v) for v in values), D(0))


class Built:
    def __init__(self, name: str, tmp: Path, through: str, dbt_vars: dict):
        self.inbox = tmp / "inbox"
        self.warehouse = tmp / "wh.duckdb"
        self.through = through
        self.counts = import_sample(name, self.inbox)
        self.result = run_pipeline(RunConfig(inbox=self.inbox, warehouse=self.warehouse, through=through,
                                             dbt_vars=dbt_vars))

    def rows(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params=None):
        return self.rows(sql, params)[0][0]

    def quarantined(self) -> dict[str, int]:
        tables = [t for (t,) in self.rows("select table_name from information_schema.tables "
                                           "where table_schema = 'quarantine'")]
        return {t: n for t in tables if (n := self.scalar(f'select count(*) from quarantine."{t}"'))}


def _build(name: str, tmp_path_factory, through: str, **dbt_vars) -> Built:
    _require(name)
    return Built(name, tmp_path_factory.mktemp(name), through, dbt_vars)


def _months(first: pd.Timestamp, through: str) -> int:
    year, month = map(int, through.split("-"))
    return (year - first.year) * 12 + month - first.month + 1


def _common_checks(b: Built, n_customers: int) -> None:
    """No quarantine; every source customer in the master; each has exactly one tier at the last month."""
    assert b.quarantined() == {}
    assert all(s.rows_quarantined == 0 and s.files_quarantined == 0 for s in b.result.ingest.feeds.values())
    for feed, n in b.counts.items():
        assert b.result.ingest.feeds[feed].rows_loaded == n, feed
    assert b.scalar("select count(*) from marts.dim_customer") == n_customers
    tiers = b.rows("select tier, count(*) from marts.customer_tier_monthly where eval_month = ? group by 1",
                   [b.through])
    assert sum(n for _, n in tiers) == n_customers
    assert {t for t, _ in tiers} <= {"A", "B", "C"}


# ---------------------------------------------------------------- ibm_ar


@pytest.fixture(scope="module")
def ibm(tmp_path_factory) -> Built:
    return _build("ibm_ar", tmp_path_factory, "2013-12", reporting_currency="USD")


@pytest.fixture(scope="module")
def ibm_src() -> pd.DataFrame:
    _require("ibm_ar")
    df = _src("ibm_accounts_receivable.csv")
    for col in ("InvoiceDate", "DueDate", "SettledDate"):
        df[col] = pd.to_datetime(df[col], format="%m/%d/%Y")
    return df


def test_ibm_population_and_quarantine(ibm, ibm_src):
    _common_checks(ibm, ibm_src.customerID.nunique())
    assert ibm.counts == {"customers": 100, "orders": len(ibm_src), "invoices": len(ibm_src),
                          "payments": int((ibm_src.SettledDate.notna()).sum())}
    assert ibm.scalar("select count(distinct eval_month) from marts.customer_tier_monthly") == \
        _months(ibm_src.InvoiceDate.min(), "2013-12")


def test_ibm_revenue_is_invoiced_amount_of_the_window(ibm, ibm_src):
    window = ibm_src[(ibm_src.InvoiceDate >= "2013-01-01") & (ibm_src.InvoiceDate <= "2013-12-31")]
    got = ibm.scalar("select sum(revenue_12m) from marts.customer_sales_monthly where eval_month = '2013-12'")
    assert got == _dec_sum(window.InvoiceAmount)


def test_ibm_collection_and_on_time_rates_per_customer(ibm, ibm_src):
    """回款率: settled by the cut-off / due in the window; on time: settled by the due date."""
    end = pd.Timestamp("2013-12-31")
    due = ibm_src[(ibm_src.DueDate >= "2013-01-01") & (ibm_src.DueDate <= end)].copy()
    due["amount"] = due.InvoiceAmount.map(D)
    due["collected"] = [a if s <= end else D(0) for a, s in zip(due.amount, due.SettledDate)]
    due["on_time"] = [a if s <= d else D(0) for a, s, d in zip(due.amount, due.SettledDate, due.DueDate)]
    expected = {cid: (_q4(g.collected.sum() / g.amount.sum()), _q4(g.on_time.sum() / g.amount.sum()))
                for cid, g in due.groupby("customerID")}
    got = {cid: (rate, on_time) for cid, rate, on_time in ibm.rows(
        "select customer_id, collection_rate_12m, on_time_rate_12m from marts.customer_receivables_monthly "
        "where eval_month = '2013-12' and billed_due_12m > 0")}
    assert got == expected
    # the chosen customer: the one with the most due amount still unpaid at the cut-off
    unpaid = (due.amount - due.collected).groupby(due.customerID).sum()
    chosen = unpaid.sort_values(ascending=False, kind="stable").index[0]
    g = due[due.customerID == chosen]
    rate = g.collected.sum() / g.amount.sum()
    assert rate < D("0.95")
    row = ibm.rows("select collection_rate_12m, e_correction from marts.customer_value_monthly "
                   "where customer_id = ? and eval_month = '2013-12'", [chosen])[0]
    assert row[0] == _q4(rate)
    assert row[1] == (D("0.95") if rate >= D("0.85") else D("0.85") if rate >= D("0.70") else D("0.70"))


# ---------------------------------------------------------------- northwind


def _northwind_ragged(file: str, width: int) -> pd.DataFrame:
    """The Northwind files have unquoted commas in addresses: read ragged, use the leading columns."""
    df = pd.read_csv(DATA_DIR / file, dtype=str, keep_default_na=False, header=None, names=range(width),
                     skiprows=1)
    return df


@pytest.fixture(scope="module")
def northwind(tmp_path_factory) -> Built:
    return _build("northwind", tmp_path_factory, "1998-05", reporting_currency="USD")


@pytest.fixture(scope="module")
def nw_src() -> dict[str, pd.DataFrame]:
    _require("northwind")
    orders = _northwind_ragged("northwind_orders.csv", 16).rename(
        columns={0: "orderID", 1: "customerID", 3: "orderDate", 5: "shippedDate"})
    orders["orderDate"] = pd.to_datetime(orders.orderDate.str[:10])
    customers = _northwind_ragged("northwind_customers.csv", 13).rename(columns={0: "customerID", 1: "companyName"})
    lines = _src("northwind_order-details.csv")
    lines["gross"] = [D(p) * D(q) for p, q in zip(lines.unitPrice, lines.quantity)]
    lines["net"] = [g * (1 - D(d)) for g, d in zip(lines.gross, lines.discount)]
    return {"orders": orders, "customers": customers, "lines": lines}


def test_northwind_population_and_quarantine(northwind, nw_src):
    _common_checks(northwind, nw_src["customers"].customerID.nunique())
    assert northwind.counts == {"customers": len(nw_src["customers"]), "orders": len(nw_src["orders"])}
    assert northwind.scalar("select count(distinct eval_month) from marts.customer_tier_monthly") == \
        _months(nw_src["orders"].orderDate.min(), "1998-05")
    # customers who never ordered are evaluated with value 0: tier C, no rank
    never = set(nw_src["customers"].customerID) - set(nw_src["orders"].customerID)
    assert never
    got = northwind.rows("select customer_id, value_score, tier, value_rank from marts.customer_tier_monthly "
                         "where eval_month = '1998-05' and customer_id in (select unnest(?))", [sorted(never)])
    assert sorted(got) == [(c, D("0.00"), "C", None) for c in sorted(never)]


def test_northwind_revenue_is_discounted_lines_of_shipped_orders(northwind, nw_src):
    orders, lines = nw_src["orders"], nw_src["lines"]
    shipped = orders[(orders.shippedDate != "NULL") & (orders.orderDate >= "1997-06-01")
                     & (orders.orderDate <= "1998-05-31")]
    window = lines[lines.orderID.isin(shipped.orderID)]
    got = northwind.rows("select sum(revenue_12m), sum(list_amount_12m), sum(orders_12m) "
                         "from marts.customer_sales_monthly where eval_month = '1998-05'")[0]
    assert got == (window.net.sum(), window.gross.sum(), len(shipped))
    # unshipped orders are open and count nowhere
    assert northwind.scalar("select count(*) from marts.fct_orders where status = 'open'") == \
        int((orders.shippedDate == "NULL").sum())


def test_northwind_has_no_receivables_so_no_correction(northwind):
    got = northwind.rows("select count(*), count(collection_rate_12m), min(e_correction), max(e_correction) "
                         "from marts.customer_value_monthly")[0]
    assert got[1:] == (0, D("1.0000"), D("1.0000"))


# ---------------------------------------------------------------- olist


@pytest.fixture(scope="module")
def olist(tmp_path_factory) -> Built:
    return _build("olist", tmp_path_factory, "2018-10", reporting_currency="BRL",
                  business_time_zone="America/Sao_Paulo")


@pytest.fixture(scope="module")
def olist_src() -> dict[str, pd.DataFrame]:
    _require("olist")
    orders = _src("olist_orders.csv").merge(_src("olist_customers.csv"), on="customer_id", validate="1:1")
    paid = _src("olist_order_payments.csv")
    paid["value"] = paid.payment_value.map(D)
    orders["paid"] = orders.order_id.map(paid.groupby("order_id").value.sum())
    reviews = _src("olist_order_reviews.csv")
    return {"orders": orders, "reviews": reviews}


def test_olist_population_and_quarantine(olist, olist_src):
    orders = olist_src["orders"]
    _common_checks(olist, orders.customer_unique_id.nunique())
    assert olist.counts["survey_responses"] == olist_src["reviews"].review_id.nunique()
    first = pd.Timestamp(orders[orders.order_status == "delivered"].order_purchase_timestamp.min())
    assert olist.scalar("select count(distinct eval_month) from marts.customer_tier_monthly") == \
        _months(first, "2018-10")
    got = dict(olist.rows("select status, count(*) from marts.fct_orders group by 1"))
    assert got == {"completed": int((orders.order_status == "delivered").sum()),
                   "cancelled": int(orders.order_status.isin(["canceled", "unavailable"]).sum()),
                   "open": int((~orders.order_status.isin(["delivered", "canceled", "unavailable"])).sum())}


def test_olist_revenue_is_payments_of_delivered_orders(olist, olist_src):
    orders = olist_src["orders"]
    day = orders.order_purchase_timestamp.str[:10]
    window = orders[(orders.order_status == "delivered") & (day >= "2017-11-01") & (day <= "2018-10-31")]
    got = olist.scalar("select sum(revenue_12m) from marts.customer_sales_monthly where eval_month = '2018-10'")
    assert got == window.paid.sum()
    # the best customer of the month is the biggest buyer of the window
    per_buyer = window.groupby("customer_unique_id").paid.sum()
    top = olist.rows("select customer_id, value_score from marts.customer_tier_monthly "
                     "where eval_month = '2018-10' and value_rank = 1")[0]
    assert top[0] == per_buyer.idxmax()


def test_olist_reviews_are_satisfaction_in_local_time(olist, olist_src):
    """One response per review_id; counted in the window by its Brazilian local answer date."""
    reviews = olist_src["reviews"].drop_duplicates("review_id")
    answered = reviews.review_answer_timestamp.str[:10]
    window = reviews[(answered >= "2017-11-01") & (answered <= "2018-10-31")]
    got = olist.rows("select sum(responses_12m), sum(nps_responses_12m) from marts.customer_loyalty_monthly "
                     "where eval_month = '2018-10'")[0]
    assert got == (len(window), 0)
    # CSAT of the customer with most reviews in the window = mean of its review scores
    buyer = olist_src["orders"].set_index("order_id").customer_unique_id
    w = window.assign(customer=window.order_id.map(buyer), score=window.review_score.astype(int))
    counts = w.groupby("customer").score.agg(["count", "sum"]).sort_values("count", ascending=False, kind="stable")
    chosen, (n, total) = counts.index[0], counts.iloc[0]
    assert n > 1
    got = olist.rows("select responses_12m, csat_12m from marts.customer_loyalty_monthly "
                     "where customer_id = ? and eval_month = '2018-10'", [chosen])[0]
    assert got == (n, (D(int(total)) / D(int(n))).quantize(D("0.0001"), ROUND_HALF_UP))  # published to 4 decimals
    # a comment with line breaks (CRLF inside the quoted field) arrives intact
    multi = reviews[reviews.review_comment_message.str.contains("\r\n")].sort_values("review_id").iloc[0]
    comment = olist.scalar("select comment from marts.fct_survey_responses where response_id = ?",
                           [multi.review_id])
    assert multi.review_comment_message in comment


# ---------------------------------------------------------------- superstore


@pytest.fixture(scope="module")
def superstore(tmp_path_factory) -> Built:
    return _build("superstore", tmp_path_factory, "2019-12", reporting_currency="USD")


@pytest.fixture(scope="module")
def ss_src() -> pd.DataFrame:
    _require("superstore")
    df = _src("superstore_orders.csv", encoding="utf-8-sig")
    df["date"] = pd.to_datetime(df["Order Date"], format="%m/%d/%Y")
    return df


def test_superstore_population_and_quarantine(superstore, ss_src):
    _common_checks(superstore, ss_src["Customer ID"].nunique())
    assert superstore.counts == {"customers": ss_src["Customer ID"].nunique(), "orders": ss_src["Order ID"].nunique()}
    assert superstore.scalar("select count(distinct eval_month) from marts.customer_tier_monthly") == \
        _months(ss_src.date.min(), "2019-12")
    segments = ss_src.drop_duplicates("Customer ID").Segment.value_counts()
    got = dict(superstore.rows("select scope, count(*) from marts.dim_customer group by 1"))
    assert got == {"national": segments["Corporate"], "local": segments["Consumer"] + segments["Home Office"]}


def test_superstore_revenue_profit_and_price_realization(superstore, ss_src):
    w = ss_src[ss_src.date.dt.year == 2019]
    got = superstore.rows("select sum(revenue_12m), sum(gross_profit_12m), sum(orders_12m) "
                          "from marts.customer_sales_monthly where eval_month = '2019-12'")[0]
    assert got == (_dec_sum(w.Sales), _dec_sum(w.Profit), w["Order ID"].nunique())
    # price realisation of the customer with the largest discounts: net / list before discount
    w = w.assign(net=w.Sales.map(D), gross=[D(s) / (1 - D(d)) for s, d in zip(w.Sales, w.Discount)])
    per = w.groupby("Customer ID")[["net", "gross"]].sum()
    per["off"] = per.gross - per.net
    chosen = per.sort_values("off", ascending=False, kind="stable").index[0]
    expected = per.loc[chosen, "net"] / per.loc[chosen, "gross"]
    got = superstore.scalar("select price_realization_12m from marts.customer_sales_monthly "
                            "where customer_id = ? and eval_month = '2019-12'", [chosen])
    assert abs(got - expected) <= D("0.0001")  # list amounts are written rounded to 4 decimals


# ---------------------------------------------------------------- the adapter itself


def test_import_is_deterministic_and_in_the_contract(tmp_path):
    _require("superstore")
    _require("ibm_ar")
    for name in ("ibm_ar", "superstore"):
        a, b = tmp_path / f"{name}-a", tmp_path / f"{name}-b"
        import_sample(name, a)
        import_sample(name, b, DATA_DIR)
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files and all(p.name == "part-0001.csv" for p in files)
        for rel in files:
            assert (a / rel).read_bytes() == (b / rel).read_bytes()
            with open(a / rel, encoding="utf-8", newline="") as fh:
                assert next(csv.reader(fh)) == FEEDS[rel.parent.name].column_names


def test_unknown_sample_and_missing_file_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown sample 'nope'"):
        import_sample("nope", tmp_path / "out")
    with pytest.raises(InputError, match="not found") as exc:
        import_sample("olist", tmp_path / "out", tmp_path)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_an_export_without_rows_is_an_input_error(tmp_path):
    # the header of the IBM export and nothing else: mapping it would write an inbox of no orders
    (tmp_path / "ibm_accounts_receivable.csv").write_text(
        "countryCode,customerID,PaperlessDate,invoiceNumber,InvoiceDate,DueDate,InvoiceAmount,Disputed,"
        "SettledDate,PaperlessBill,DaysToSettle,DaysLate\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no order rows") as exc:
        import_sample("ibm_ar", tmp_path / "out", tmp_path)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_a_value_the_adapter_cannot_read_is_named_in_one_line(tmp_path):
    """A hand-edited export (an amount `N/A`) stops the mapping with the value in the message: decimal's own
    message named none ("[<class 'decimal.ConversionSyntax'>]"); a given --data-dir gets no hint to pass one."""
    (tmp_path / "ibm_accounts_receivable.csv").write_text(
        "countryCode,customerID,PaperlessDate,invoiceNumber,InvoiceDate,DueDate,InvoiceAmount,Disputed,"
        "SettledDate,PaperlessBill,DaysToSettle,DaysLate\n"
        "391,0379-NEVHP,4/6/2013,611365,1/2/2013,2/1/2013,N/A,No,1/15/2013,Paper,13,0\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        import_sample("ibm_ar", tmp_path / "out", tmp_path)
    assert "'N/A' is not a number" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError) as missing:
        import_sample("olist", tmp_path / "out", tmp_path / "nowhere")
    assert "not found" in str(missing.value) and "--data-dir" not in str(missing.value)
