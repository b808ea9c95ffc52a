"""sources.md "Duplicates" in staging (macro latest_raw_rows): per key, the row with the latest
updated_at wins, instants compared; a tie goes to the file taken later, then to the later line.
Every expected value below is read off the rows by hand. Keys are trimmed before they are
compared. The second run delivers one more file and checks the incremental re-staging path.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import rows, run, write_inbox

T = "2024-05-10T10:00:00+08:00"       # 02:00Z
T_LATER = "2024-05-10T11:00:00+08:00"  # 03:00Z
T_SAME_INSTANT = "2024-05-10T02:00:00Z"  # the instant T, written another way

ORDER_HEAD = "order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at"

INBOX = {
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        K1,旧名称,technology,local,East,王敏,2024-01-01,{T}
    """,
    "customers/part-0002.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        K1,新名称,technology,local,East,王敏,2024-01-01,{T}
    """,
    "orders/part-0001.csv": f"""
        {ORDER_HEAD}
        A1,K1,,2024-05-01,completed,CNY,100,100,,{T}
        A2,K1,,2024-05-01,completed,CNY,10,10,,{T}
        A2,K1,,2024-05-01,completed,CNY,20,20,,{T}
        A3,K1,,2024-05-01,completed,CNY,30,30,,{T_LATER}
        A4,K1,,2024-05-01,completed,CNY,50,50,,{T}
        A5,K1,,2024-05-01,completed,CNY,70,70,,{T_SAME_INSTANT}
    """,
    "orders/part-0002.csv": f"""
        {ORDER_HEAD}
        A1,K1,,2024-05-01,completed,CNY,200,200,,{T}
        A3,K1,,2024-05-01,completed,CNY,40,40,,{T}
        " A4 ",K1,,2024-05-01,completed,CNY,60,60,,{T}
        A5,K1,,2024-05-01,completed,CNY,80,80,,{T}
    """,
    "payments/part-0001.csv": f"""
        payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
        P1,I1,K1,2024-05-20,CNY,5,bank_transfer,{T}
        P1,I1,K1,2024-05-20,CNY,7,bank_transfer,{T}
    """,
    "invoices/part-0001.csv": f"""
        invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
        I1,K1,A1,2024-05-01,2024-05-31,CNY,200,{T}
    """,
}


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedupe")
    inbox = write_inbox(root / "inbox", INBOX)
    warehouse = root / "wh.duckdb"
    run(inbox, warehouse, "2024-05")
    first = {r["order_id"]: r for r in rows(warehouse, "select * from staging.stg_orders")}
    first_payments = rows(warehouse, "select payment_id, amount from staging.stg_payments")
    first_customers = rows(warehouse, "select customer_id, customer_name from staging.stg_customers")
    # a later file: A1 again at the same instant (wins: later file), A3 at an older one (loses)
    write_inbox(inbox, {"orders/part-0003.csv": f"""
        {ORDER_HEAD}
        A1,K1,,2024-05-01,completed,CNY,300,300,,{T_SAME_INSTANT}
        A3,K1,,2024-05-01,completed,CNY,99,99,,{T}
    """})
    run(inbox, warehouse, "2024-05")
    second = {r["order_id"]: r for r in rows(warehouse, "select * from staging.stg_orders")}
    return first, first_payments, first_customers, second


def test_one_row_per_trimmed_key(staged):
    first, _, _, second = staged
    assert sorted(first) == ["A1", "A2", "A3", "A4", "A5"]
    assert sorted(second) == ["A1", "A2", "A3", "A4", "A5"]


def test_a_tie_goes_to_the_later_file_then_the_later_line(staged):
    first, payments, customers, _ = staged
    assert first["A1"]["net_amount"] == D("200")  # same updated_at: part-0002 is taken later
    assert first["A2"]["net_amount"] == D("20")  # same file and updated_at: the later line
    assert first["A4"]["net_amount"] == D("60")  # ' A4 ' is A4: the later file wins
    assert first["A5"]["net_amount"] == D("80")  # 02:00Z and 10:00+08:00 are one instant: a tie
    assert payments == [{"payment_id": "P1", "amount": D("7")}]
    assert customers == [{"customer_id": "K1", "customer_name": "新名称"}]


def test_the_latest_instant_wins_over_a_later_file(staged):
    first, _, _, second = staged
    assert first["A3"]["net_amount"] == D("30")
    assert second["A3"]["net_amount"] == D("30")


def test_a_file_delivered_later_is_ranked_with_every_earlier_version(staged):
    _, _, _, second = staged
    assert second["A1"]["net_amount"] == D("300")  # the same instant as part-0002's 200: later file
    assert second["A1"]["source_file"].endswith("part-0003.csv")
    assert second["A2"]["net_amount"] == D("20")  # untouched keys keep their row
