"""metrics.md rules on a small hand-built inbox; every expected value is worked out by hand
in the comments from the rows below (evaluated through 2024-06).

Customers (all signed 2023-01-01):
- M1 local: completed 2023-06-10 net 100 (list 120, cost 60, contract C1); completed 2024-03-10
  net 300 (list 300, no cost, contract C1); O-M1-3 2024-05-05 net 50 (list 50, cost 20), first
  delivered `open`, then `completed` in a later file, then an older re-delivery (as an instant)
  saying `open` again; a cancelled 2024-04-01 order of 999 never counts.
- M2 national: completed 2024-01-15 net 1000; invoices I-M2-1 (due 2024-02-14, 1000, paid 600
  on 2024-02-10 and 500 on 2024-03-05: overpaid by 100), I-M2-2 (due 2024-06-19, 400, paid
  2024-07-02: after the cut-off), I-M2-3 (due 2024-04-30, 200, never paid).
- M3 local: completed 2024-06-01 net 10; one survey response without NPS (satisfaction 4) in
  2024-02, one submitted 2024-06-30T20:00Z = 2024-07-01 in Shanghai (outside W(2024-06)).
- M4: no orders; NPS answers 10, 9, 6 and one without NPS.
- M5: no orders and no surveys.
- M6 local: a USD order of 100 in 2024-04 (rate 7.25) and a EUR order without a rate.
- Tie-B and Tie-a local: one order of 500 each in 2024-06 (equal V; byte order puts 'Tie-B' first).
- ZZ is not in the master: its completed order on 2023-05-20 is the earliest of all, so the
  evaluation months start in 2023-05.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import one, rows, run, write_inbox

TS = "2024-07-05T08:00:00+08:00"

INBOX = {
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        M1,甲公司,technology,local,East,王敏,2023-01-01,{TS}
        M2,Beta Finance,finance,national,North,李强,2023-01-01,{TS}
        M3,丙能源,energy,local,West,刘洋,2023-01-01,{TS}
        M4,Delta Retail,retail,local,South,张伟,2023-01-01,{TS}
        M5,戊物流,logistics,local,East,王敏,2023-01-01,{TS}
        M6,Foxtrot Tech,technology,local,East,王敏,2023-01-01,{TS}
        Tie-B,Tie B,education,local,East,王敏,2023-01-01,{TS}
        Tie-a,Tie a,education,local,East,王敏,2023-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-ZZ-1,ZZ,,2023-05-20,completed,CNY,10,10,,{TS}
        O-M1-1,M1,C1,2023-06-10,completed,CNY,120,100,60,{TS}
        O-M1-2,M1,C1,2024-03-10,completed,CNY,300,300,,{TS}
        O-M1-3,M1,,2024-05-05,open,CNY,50,50,20,2024-05-05T10:00:00+08:00
        O-M1-X,M1,,2024-04-01,cancelled,CNY,999,999,,{TS}
        O-M2-1,M2,,2024-01-15,completed,CNY,1000,1000,700,{TS}
        O-M3-1,M3,,2024-06-01,completed,,10,10,,{TS}
        O-M6-1,M6,,2024-04-05,completed,USD,100,100,,{TS}
        O-M6-2,M6,,2024-04-06,completed,EUR,100,100,,{TS}
        O-TB-1,Tie-B,,2024-06-01,completed,CNY,500,500,,{TS}
        O-Ta-1,Tie-a,,2024-06-01,completed,CNY,500,500,,{TS}
    """,
    "orders/part-0002.csv": """
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-M1-3,M1,,2024-05-05,completed,CNY,50,50,20,2024-05-06T09:00:00+08:00
    """,
    # 10:00+10:00 is 00:00Z, earlier than 09:00+08:00 (01:00Z): this stale `open` must lose.
    "orders/part-0003.csv": """
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-M1-3,M1,,2024-05-05,open,CNY,50,50,20,2024-05-06T10:00:00+10:00
    """,
    "invoices/part-0001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I-M2-1,M2,O-M2-1,2024-01-15,2024-02-14,CNY,1000,{TS}
        I-M2-2,M2,,2024-05-20,2024-06-19,CNY,400,{TS}
        I-M2-3,M2,,2024-04-01,2024-04-30,CNY,200,{TS}
    """,
    "payments/part-0001.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P1,I-M2-1,M2,2024-02-10,CNY,600,bank_transfer,{TS}
        P2,I-M2-1,M2,2024-03-05,CNY,500,bank_transfer,{TS}
        P3,I-M2-2,M2,2024-07-02,CNY,400,bank_transfer,{TS}
        P4,I-NONE,M2,2024-03-01,CNY,50,bank_transfer,{TS}
    """,
    "survey_responses/part-0001.csv": f"""
        response_id,customer_id,survey_id,submitted_at,nps_score,satisfaction,product_quality,delivery,after_sales_service,responsiveness,comment,respondent_name,respondent_phone,respondent_email,updated_at
        R1,M3,W1,2024-02-10T10:00:00+08:00,,4,,,,,"好,但是
        慢",张三,13800000000,a@example.com,{TS}
        R2,M3,W2,2024-06-30T20:00:00Z,0,1,,,,,,,,,{TS}
        R3,M4,W1,2024-03-01T10:00:00+08:00,10,5,,,,,,,,,{TS}
        R4,M4,W1,2024-03-02T10:00:00+08:00,9,4,,,,,,,,,{TS}
        R5,M4,W1,2024-03-03T10:00:00+08:00,6,2,,,,,,,,,{TS}
        R6,M4,W1,2024-03-04T10:00:00+08:00,,5,,,,,,,,,{TS}
        R7,ZZ,W1,2024-03-05T10:00:00+08:00,9,5,,,,,,,,,{TS}
    """,
    "tier_overrides/part-0001.csv": f"""
        customer_id,eval_month,tier,reason,approved_by,updated_at
        ZZ,2024-06,A,strategic prospect,张总,{TS}
    """,
    "fx_rates/part-0001.csv": """
        currency,month,rate_to_reporting
        USD,2024-04,7.25
    """,
}


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    inbox = write_inbox(root / "inbox", INBOX)
    warehouse = root / "wh.duckdb"
    run(inbox, warehouse, "2024-06")
    return warehouse


def _m(wh, table, customer, month, cols="*"):
    return one(wh, f"select {cols} from marts.{table} where customer_id = ? and eval_month = ?", [customer, month])


def test_evaluation_months_start_at_earliest_completed_order_of_any_customer(wh):
    months = [r["eval_month"] for r in rows(wh, "select distinct eval_month from marts.customer_tier_monthly order by 1")]
    assert months[0] == "2023-05" and months[-1] == "2024-06" and len(months) == 14
    # every master customer has a row in every month (signed before the start)
    assert one(wh, "select count(*) as n from marts.customer_tier_monthly")["n"] == 8 * 14
    assert rows(wh, "select * from marts.customer_tier_monthly where customer_id = 'ZZ'") == []


def test_sales_measures_with_order_updated_open_to_completed(wh):
    s = _m(wh, "customer_sales_monthly", "M1", "2024-06")
    # W(2024-06) = 2023-07..2024-06: 300 + 50 (the updated order); P: 100; cancelled never counts
    assert s["revenue_12m"] == D("350") and s["revenue_prev_12m"] == D("100")
    assert s["gross_profit_12m"] == D("30")  # only O-M1-3 has a cost: 50 - 20
    assert s["orders_12m"] == 2 and s["contracts_12m"] == 1 and s["active_months_12m"] == 2
    assert s["price_realization_12m"] == D("1.0000")  # 350 / (300 + 50)
    assert s["growth_rate"] == D("2.5000")  # (350 - 100) / 100
    assert str(s["last_order_date"]) == "2024-05-05"
    assert s["tenure_months"] == 13  # 2023-06 .. 2024-06
    assert str(s["first_order_date"]) == "2023-06-10"
    # as of end(2023-05) M1 had no order yet: nothing dated after the cut-off shows in that month
    before = _m(wh, "customer_sales_monthly", "M1", "2023-05")
    assert (before["first_order_date"], before["last_order_date"], before["tenure_months"]) == (None, None, 0)
    # W(2024-04) = 2023-05..2024-04: 100 + 300; O-M1-3 (dated 2024-05-05) not yet
    assert _m(wh, "customer_sales_monthly", "M1", "2024-04")["revenue_12m"] == D("400")


def test_growth_null_and_potential_clamp(wh):
    first = _m(wh, "customer_value_monthly", "M1", "2023-06")
    assert first["growth_rate"] is None  # nothing in P(M)
    assert first["d_potential"] == first["b_current"] == D("100")
    assert first["value_score"] == D("100.00")
    last = _m(wh, "customer_value_monthly", "M1", "2024-06")
    # growth +250% clamps the factor at 1.5: d = 525; V = 0.7*350 + 0.3*525 = 402.5
    assert last["potential_factor"] == D("1.5") and last["d_potential"] == D("525")
    assert last["value_score"] == D("402.50")
    assert last["e_correction"] == D("1.00")  # nothing due: rate null -> e = 1


def test_receivables_capped_overpayment_and_payment_after_cutoff(wh):
    r = _m(wh, "customer_receivables_monthly", "M2", "2024-06")
    assert r["billed_due_12m"] == D("1600")
    assert r["collected_12m"] == D("1000")  # 1100 paid on I-M2-1 capped at 1000; P3 after cut-off
    assert r["collection_rate_12m"] == D("0.6250")
    assert r["on_time_rate_12m"] == D("0.3750")  # only P1 (600) by its due date
    assert r["outstanding_end"] == D("600")  # I-M2-2 400 + I-M2-3 200
    assert r["aging_overdue_1_30"] == D("400")  # 2024-06-30 - 2024-06-19 = 11 days
    assert r["aging_overdue_61_90"] == D("200")  # 2024-06-30 - 2024-04-30 = 61 days
    assert r["aging_not_due"] == r["aging_overdue_31_60"] == r["aging_overdue_90_plus"] == D("0")
    assert r["dso"] == D("219.0000")  # 600 / 1000 * 365, published at 4 decimals
    feb = _m(wh, "customer_receivables_monthly", "M2", "2024-02")
    assert feb["collection_rate_12m"] == D("0.6000") and feb["outstanding_end"] == D("400")
    assert feb["aging_overdue_1_30"] == D("400")  # 2024-02-29 - 2024-02-14 = 15 days
    mar = _m(wh, "customer_receivables_monthly", "M2", "2024-03")
    assert mar["collection_rate_12m"] == D("1.0000") and mar["outstanding_end"] == D("0")
    jan = _m(wh, "customer_receivables_monthly", "M2", "2024-01")
    assert jan["billed_due_12m"] == D("0") and jan["collection_rate_12m"] is None


def test_value_with_national_scope_and_low_collection(wh):
    v = _m(wh, "customer_value_monthly", "M2", "2024-06")
    # a = 1.1, b = d = 1000 (no previous revenue), rate 0.625 < 0.70 -> e = 0.70
    assert v["a_nature"] == D("1.1") and v["e_correction"] == D("0.70")
    assert v["value_score"] == D("770.00")
    assert _m(wh, "customer_value_monthly", "M2", "2024-01")["value_score"] == D("1100.00")  # nothing due: e = 1
    assert "low_collection" in _m(wh, "customer_tier_monthly", "M2", "2024-06")["risk_flags"].split(",")


def test_exceptions_report_overpayment_unapplied_orphan_and_missing_rate(wh):
    ex = {(r["exception_type"], r["record_id"]): r for r in rows(wh, "select * from marts.receivables_exceptions")}
    assert ex[("overpayment", "I-M2-1")]["amount"] == D("100")
    # with its source rows (outputs.md): the invoice's file and line, and the payments that overpaid it
    over = ex[("overpayment", "I-M2-1")]
    assert (over["source_file"], over["source_line"]) == ("invoices/part-0001.csv", 2)
    assert over["detail"].endswith("(payments P1, P2)")
    assert ex[("unapplied_payment", "P4")]["detail"] == "unknown_invoice"
    assert ("orphan_order", "O-ZZ-1") in ex
    assert ("missing_fx_rate", "O-M6-2") in ex
    # sources.md: every orphan is reported, a survey answer and an override of an unknown customer too
    assert ex[("orphan_survey_response", "R7")]["source_line"] == 9  # the header, R1 on two lines, R2..R6
    assert ex[("orphan_override", "ZZ 2024-06")]["feed"] == "tier_overrides"
    assert len(ex) == 6


def test_currency_conversion_and_held_back_row(wh):
    s = _m(wh, "customer_sales_monthly", "M6", "2024-06")
    assert s["revenue_12m"] == D("725")  # 100 USD * 7.25; the EUR order without a rate counts nowhere
    assert s["orders_12m"] == 1


def test_csat_used_when_nps_missing_and_timezone_of_submission(wh):
    loy = _m(wh, "customer_loyalty_monthly", "M3", "2024-06")
    # R2 is 2024-07-01 in Shanghai: outside W(2024-06). Only R1 counts: no NPS, CSAT 4.
    assert loy["responses_12m"] == 1 and loy["nps_12m"] is None and loy["csat_12m"] == D("4.0000")
    # 100 * (0.4 * 1/12 + 0.2 * 1/36 + 0.4 * (4 - 1)/4) = 33.888... -> 33.9
    assert loy["loyalty_score"] == D("33.9")


def test_nps_and_loyalty_without_orders(wh):
    loy = _m(wh, "customer_loyalty_monthly", "M4", "2024-06")
    # 3 scored answers: promoters 2 (10, 9), detractors 1 (6): NPS = 100 * 1/3 = 33.3
    assert (loy["promoters_12m"], loy["detractors_12m"], loy["nps_responses_12m"]) == (2, 1, 3)
    assert loy["nps_12m"] == D("33.3")
    # satisfaction part (33.33 + 100) / 200; loyalty = 40 * 0.6667 = 26.666... -> 26.7
    assert loy["loyalty_score"] == D("26.7")
    assert loy["csat_12m"] == D("4.0000")  # (5 + 4 + 2 + 5) / 4, published at 4 decimals
    none = _m(wh, "customer_loyalty_monthly", "M5", "2024-06")
    assert none["responses_12m"] == 0 and none["nps_12m"] is None and none["loyalty_score"] == D("20.0")


def test_no_orders_means_v_zero_raw_c_no_rank(wh):
    t = _m(wh, "customer_tier_monthly", "M4", "2024-06")
    assert t["value_score"] == D("0.00") and t["value_rank"] is None and t["share_before"] is None
    assert t["raw_tier"] == "C" and t["tier"] == "C"
    assert "inactive_90d" in t["risk_flags"].split(",")


def test_ties_in_v_broken_by_customer_id_byte_order(wh):
    ranked = rows(wh, "select customer_id, value_score, value_rank, share_before, raw_tier from marts.customer_tier_monthly "
                      "where eval_month = '2024-06' and value_rank is not null order by value_rank")
    # V: M2 770, M6 725, Tie-B 500, Tie-a 500 ('B' 0x42 < 'a' 0x61), M1 402.50, M3 10; total 2907.50
    assert [r["customer_id"] for r in ranked] == ["M2", "M6", "Tie-B", "Tie-a", "M1", "M3"]
    shares = [r["share_before"] for r in ranked]
    assert shares == [D("0.0000"), D("0.2648"), D("0.5142"), D("0.6862"), D("0.8581"), D("0.9966")]
    assert [r["raw_tier"] for r in ranked] == ["A", "A", "A", "A", "B", "C"]


def test_personal_data_never_reaches_marts(wh):
    text = str(rows(wh, "select * from marts.fct_survey_responses"))
    for personal in ("张三", "13800000000", "a@example.com"):
        assert personal not in text
    cols = {r["column_name"] for r in rows(wh, "select column_name from information_schema.columns "
                                               "where table_schema = 'marts'")}
    # sources.md: "staging keeps a salted hash only": no respondent column in any mart, not even the hash
    assert not {c for c in cols if c.startswith("respondent")}
    hashed = one(wh, "select respondent_hash from staging.stg_survey_responses where response_id = 'R1'")
    assert hashed["respondent_hash"] is not None and len(hashed["respondent_hash"]) == 64
