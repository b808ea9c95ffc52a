"""metrics.md "Arithmetic" at the edges: value_score is V rounded half away from zero from
exact inputs, also when the growth factor is a repeating decimal; a payment without a
currency is in its invoice's currency (sources.md)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import one, run, write_inbox

TS = "2024-02-05T08:00:00+08:00"


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    inbox = write_inbox(root / "inbox", {
        "customers/part-0001.csv": f"""
            customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
            G1,Growth Repeating Ltd,retail,local,East,王敏,2022-01-01,{TS}
            R1,Tiny Amounts Ltd,retail,local,East,王敏,2022-01-01,{TS}
            P1,Blank Currency Payer,retail,local,East,王敏,2022-01-01,{TS}
            H1,Near Half Cent Ltd,retail,local,East,王敏,2022-01-01,{TS}
            H2,Large Near Half Cent Ltd,retail,global,East,王敏,2022-01-01,{TS}
            H3,Large Above Half Cent Ltd,retail,global,East,王敏,2022-01-01,{TS}
        """,
        "orders/part-0001.csv": f"""
            order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
            G1-A,G1,,2023-01-15,completed,CNY,11250000,11250000,,{TS}
            G1-B,G1,,2024-01-15,completed,CNY,6006750,6006750,,{TS}
            R1-A,R1,,2024-01-10,completed,CNY,1.00499999,1.00499999,,{TS}
            R1-B,R1,,2024-01-11,completed,USD,0.00000001,0.00000001,,{TS}
            P1-A,P1,,2023-06-10,completed,USD,100,100,,{TS}
            H1-A,H1,,2023-01-20,completed,CNY,139311.62,139311.62,,{TS}
            H1-B,H1,,2024-01-20,completed,CNY,70020.56,70020.56,,{TS}
            H2-A,H2,,2023-01-20,completed,CNY,898684229.48,898684229.48,,{TS}
            H2-B,H2,,2024-01-20,completed,CNY,722706013.40,722706013.40,,{TS}
            H3-A,H3,,2023-01-20,completed,CNY,703518025.07,703518025.07,,{TS}
            H3-B,H3,,2024-01-20,completed,CNY,813556820.64,813556820.64,,{TS}
        """,
        "invoices/part-0001.csv": f"""
            invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
            I-P1,P1,P1-A,2023-06-10,2023-07-10,USD,100,{TS}
        """,
        "payments/part-0001.csv": f"""
            payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
            PAY-P1,I-P1,P1,2023-07-05,,100,bank_transfer,{TS}
        """,
        "fx_rates/part-0001.csv": """
            currency,month,rate_to_reporting
            USD,2023-06,7
            USD,2024-01,0.999999
        """,
    })
    warehouse = root / "wh.duckdb"
    run(inbox, warehouse, "2024-01")
    return warehouse


def test_value_score_exact_when_growth_factor_repeats(wh):
    v = one(wh, "select * from marts.customer_value_monthly where customer_id = 'G1' and eval_month = '2024-01'")
    # growth = (6,006,750 - 11,250,000) / 11,250,000 = -0.46606... (repeating), not clamped;
    # d = 6,006,750^2 / 11,250,000 = 3,207,204.05 exactly; V = 0.7 b + 0.3 d = 5,166,886.215 -> .22
    assert v["d_potential"] == D("3207204.05")
    assert v["value_score"] == D("5166886.22")


def test_value_score_a_hair_below_a_half_cent_rounds_down(wh):
    v = one(wh, "select * from marts.customer_value_monthly where customer_id = 'H1' and eval_month = '2024-01'")
    # b = 70,020.56, previous 12 months 139,311.62: 1 + growth = 0.50262 (not clamped);
    # d = 70,020.56^2 / 139,311.62 = 35,193.6099997516...; no invoices: e = 1;
    # V = 0.7 x 70,020.56 + 0.3 d = 49,014.392 + 10,558.0829999255 = 59,572.4749999255 -> .47
    # (found at L by the benchmark: d rounded to 35,193.61 gives V = 59,572.475 -> .48)
    assert abs(v["d_potential"] - D("35193.6099997516")) < D("1e-9")
    assert v["value_score"] == D("59572.47")


@pytest.mark.parametrize("customer, d, score", [
    # global (a = 1.2), no invoices (e = 1), 1 + growth within [0.5, 1.5]; exact fractions:
    # d = 722,706,013.40^2 / 898,684,229.48 = 581,187,434.5527777265...
    # V = 1.2 (0.7 b + 0.3 d) = 816,300,527.6949999815... -> .69
    ("H2", D("581187434.5527777265"), D("816300527.69")),
    # d = 813,556,820.64^2 / 703,518,025.07 = 940,807,025.2983335263...
    # V = 1.2 (0.7 b + 0.3 d) = 1,022,078,258.4450000694... -> .45
    ("H3", D("940807025.2983335263"), D("1022078258.45")),
])
def test_value_score_of_large_customers_near_a_half_cent(wh, customer, d, score):
    # at these sizes a double holds d to about 1e-7 only: the residual correction keeps it exact
    v = one(wh, f"select * from marts.customer_value_monthly where customer_id = '{customer}' "
                "and eval_month = '2024-01'")
    assert abs(v["d_potential"] - d) < D("1e-9")
    assert v["value_score"] == score


def test_value_score_rounds_the_exact_value_once(wh):
    v = one(wh, "select * from marts.customer_value_monthly where customer_id = 'R1' and eval_month = '2024-01'")
    # b = 1.00499999 + 0.00000001 x 0.999999 = 1.00499999999999; no history: d = b, e = 1 -> V rounds to 1.00
    assert v["b_current"] == D("1.00499999999999")
    assert v["d_potential"] == v["b_current"]
    assert v["value_score"] == D("1.00")


def test_payment_without_currency_is_in_its_invoices_currency(wh):
    r = one(wh, "select * from marts.customer_receivables_monthly where customer_id = 'P1' and eval_month = '2023-07'")
    # invoice 100 USD at the June rate 7 = 700; the payment of 100 without a currency settles it
    assert r["billed_due_12m"] == D("700") and r["collected_12m"] == D("700")
    assert r["collection_rate_12m"] == D("1.0000")
