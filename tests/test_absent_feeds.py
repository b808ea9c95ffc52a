"""sources.md "Two kinds of source": a feed folder may be absent (a company without a survey tool
has no survey_responses; one that keeps payments elsewhere has none), and the measures that depend
on it are then null, not 0. And metrics.md's value_basis = gross_profit: a loss-making account has
a negative value_score, raw tier C and no rank, and the month still publishes.

Customers (signed 2023-01-01), evaluated through 2024-06 (the months start 2024-03, the earliest
completed order); no payments/ and no survey_responses/ folder:
- K1 local: completed 2024-03-10 net 100 (cost 60); invoice I1 100 due 2024-04-09.
- K2 national: completed 2024-04-10 net 1000 (cost 1100); invoice I2 1000 due 2024-05-10.
- K3 local: completed 2024-05-10 net 500 (cost 100); no invoice.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import one, rows, run, write_inbox

TS = "2024-07-05T08:00:00+08:00"

INBOX = {
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        K1,甲公司,technology,local,East,王敏,2023-01-01,{TS}
        K2,乙集团,finance,national,North,李强,2023-01-01,{TS}
        K3,丙能源,energy,local,West,刘洋,2023-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O1,K1,,2024-03-10,completed,CNY,100,100,60,{TS}
        O2,K2,,2024-04-10,completed,CNY,1000,1000,1100,{TS}
        O3,K3,,2024-05-10,completed,CNY,500,500,100,{TS}
    """,
    "invoices/part-0001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I1,K1,O1,2024-03-10,2024-04-09,CNY,100,{TS}
        I2,K2,O2,2024-04-10,2024-05-10,CNY,1000,{TS}
    """,
}


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory):
    root = tmp_path_factory.mktemp("absent")
    inbox = write_inbox(root / "inbox", INBOX)
    run(inbox, root / "revenue" / "wh.duckdb", "2024-06")
    run(inbox, root / "gross_profit" / "wh.duckdb", "2024-06", dbt_vars={"value_basis": "gross_profit"})
    return {"revenue": root / "revenue" / "wh.duckdb", "gross_profit": root / "gross_profit" / "wh.duckdb"}


def _m(wh, table, customer, month="2024-06"):
    return one(wh, f"select * from marts.{table} where customer_id = ? and eval_month = ?", [customer, month])


def test_without_a_payment_feed_collections_are_null_and_e_is_one(warehouses):
    wh = warehouses["revenue"]
    r = _m(wh, "customer_receivables_monthly", "K1")
    assert r["billed_due_12m"] == D("100")  # the invoice feed was delivered: I1 is due in W(2024-06)
    for column in ("collected_12m", "paid_on_time_12m", "collection_rate_12m", "on_time_rate_12m", "outstanding_end",
                   "aging_not_due", "aging_overdue_1_30", "aging_overdue_31_60", "aging_overdue_61_90",
                   "aging_overdue_90_plus", "open_invoices", "dso"):
        assert r[column] is None, column
    # a collection rate of 0 would give e = 0.70 and V = 70; unknown gives e = 1.00
    v = _m(wh, "customer_value_monthly", "K1")
    assert v["e_correction"] == D("1.00") and v["value_score"] == D("100.00")
    assert _m(wh, "customer_value_monthly", "K2")["value_score"] == D("1100.00")  # national: 1.1 * 1000
    assert "low_collection" not in str(_m(wh, "customer_tier_monthly", "K1")["risk_flags"])
    # ranks 1100 (K2), 500 (K3), 100 (K1): shares before 0, 1100/1700, 1600/1700 = 0.94
    assert [(t["customer_id"], t["value_rank"], t["raw_tier"]) for t in rows(
        wh, "select * from marts.customer_tier_monthly where eval_month = '2024-06' order by value_rank")] == [
        ("K2", 1, "A"), ("K3", 2, "A"), ("K1", 3, "B")]
    detail = one(wh, "select * from marts.customer_receivables_detail where invoice_id = 'I1' and eval_month = '2024-06'")
    assert detail["amount"] == D("100") and detail["days_past_due"] == 82  # 2024-06-30 - 2024-04-09
    assert (detail["collected_by_cutoff"], detail["outstanding_at_cutoff"], detail["aging_bucket"]) == (None, None, None)
    # the report's collection-rate chart has no box to draw: it says so, rather than three empty boxes
    report = (wh.parent / "exports" / "report_2024-06.html").read_text(encoding="utf-8")
    assert "no collection rate this month" in report


def test_without_a_survey_feed_response_counts_are_null_and_satisfaction_is_neutral(warehouses):
    loyalty = _m(warehouses["revenue"], "customer_loyalty_monthly", "K1")
    for column in ("responses_12m", "nps_responses_12m", "promoters_12m", "detractors_12m", "nps_12m", "csat_12m"):
        assert loyalty[column] is None, column
    # 100 * (0.4 * 1/12 + 0.2 * 4/36 + 0.4 * 0.5) = 25.56 (active 1 month, tenure 2024-03..06, no survey)
    assert loyalty["loyalty_score"] == D("25.6")


def test_a_loss_making_account_under_gross_profit_is_c_without_rank_and_the_month_publishes(warehouses):
    wh = warehouses["gross_profit"]
    # b = gross profit: K1 40, K2 -100 (national: V = 1.1 * -100), K3 400; no growth (nothing in P)
    assert _m(wh, "customer_value_monthly", "K2")["value_score"] == D("-110.00")
    published = {r["customer_id"]: r for r in rows(
        wh, "select * from marts.published_tiers where eval_month = '2024-06'")}
    assert set(published) == {"K1", "K2", "K3"}
    assert (published["K2"]["value_rank"], published["K2"]["share_before"], published["K2"]["raw_tier"]) == (
        None, None, "C")
    # ranked on the positive scores only: K3 400 first (share 0), K1 40 (share 400/440 = 0.909: B)
    assert (published["K3"]["value_rank"], published["K3"]["raw_tier"]) == (1, "A")
    assert (published["K1"]["value_rank"], published["K1"]["raw_tier"]) == (2, "B")
