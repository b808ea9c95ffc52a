"""sources.md fx_rates: an order in a currency without a rate for its month is held back
(missing_fx_rate), counts nowhere, and counts automatically once the rate arrives."""

from __future__ import annotations

from decimal import Decimal as D

from conftest import one, rows, run, write_inbox

TS = "2024-07-05T08:00:00+08:00"


def quarantined(wh) -> set[tuple]:
    out = set()
    for feed, key, amount in [("orders", "order_id", "net_amount"), ("invoices", "invoice_id", "amount"),
                              ("payments", "payment_id", "amount")]:
        out |= {(feed, r["key"], r["_reason"], r["currency"], r["amount"], r["_line"])
                for r in rows(wh, f"select {key} as key, _reason, currency, {amount} as amount, _line "
                                  f"from quarantine.{feed}")}
    return out


def test_missing_rate_is_held_back_then_retried(tmp_path):
    inbox = write_inbox(tmp_path / "inbox", {
        "customers/part-0001.csv": f"""
            customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
            E1,Euro Kunde GmbH,manufacturing,local,West,王敏,2024-01-01,{TS}
            C1,本地客户,retail,local,East,王敏,2024-01-01,{TS}
        """,
        "orders/part-0001.csv": f"""
            order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
            OC,C1,,2024-03-01,completed,CNY,500,500,,{TS}
            OE,E1,,2024-03-10,completed,EUR,100,100,,{TS}
        """,
        "invoices/part-0001.csv": f"""
            invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
            IE,E1,OE,2024-03-10,2024-04-09,EUR,100,{TS}
        """,
        "payments/part-0001.csv": f"""
            payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at
            PX,IE,E1,2024-04-01,USD,100,bank_transfer,{TS}
        """,
    })
    wh = tmp_path / "wh.duckdb"
    first = run(inbox, wh, "2024-04")
    # the run reports them per feed and reason (the CLI prints them beside the ingest table)
    assert first.held_back == {"orders": {"missing_fx_rate": 1}, "invoices": {"missing_fx_rate": 1},
                               "payments": {"currency_mismatch": 1}}
    held = {(r["feed"], r["record_id"], r["reason"], r["row_month"]) for r in rows(wh, "select * from quarantine.held_back")}
    assert held == {("orders", "OE", "missing_fx_rate", "2024-03"), ("invoices", "IE", "missing_fx_rate", "2024-03"),
                    ("payments", "PX", "currency_mismatch", "2024-04")}
    e1 = one(wh, "select revenue_12m from marts.customer_sales_monthly where customer_id = 'E1' and eval_month = '2024-04'")
    assert e1["revenue_12m"] == D("0")
    # sources.md: held back = "quarantined with reason missing_fx_rate" / "is quarantined (currency_mismatch)";
    # operations.md: quarantined rows are read from quarantine.<feed>, with their raw values and file line
    assert quarantined(wh) == {("orders", "OE", "missing_fx_rate", "EUR", "100", 3),
                               ("invoices", "IE", "missing_fx_rate", "EUR", "100", 2),
                               ("payments", "PX", "currency_mismatch", "USD", "100", 2)}

    write_inbox(inbox, {"fx_rates/part-0001.csv": """
        currency,month,rate_to_reporting
        EUR,2024-03,7.5
    """})
    assert run(inbox, wh, "2024-04").held_back == {"payments": {"currency_mismatch": 1}}
    e1 = one(wh, "select revenue_12m from marts.customer_sales_monthly where customer_id = 'E1' and eval_month = '2024-04'")
    assert e1["revenue_12m"] == D("750")  # 100 EUR * 7.5, retried without re-delivering the order
    assert {r["record_id"] for r in rows(wh, "select * from quarantine.held_back")} == {"PX"}
    # the order and the invoice count now, so they left quarantine; nothing is listed twice
    assert quarantined(wh) == {("payments", "PX", "currency_mismatch", "USD", "100", 2)}
    rec = one(wh, "select billed_due_12m, collected_12m from marts.customer_receivables_monthly "
                  "where customer_id = 'E1' and eval_month = '2024-04'")
    assert rec["billed_due_12m"] == D("750") and rec["collected_12m"] == D("0")  # the USD payment is not applied
    # quarantined rows are not facts: the payment in another currency than its invoice is not in fct_payments,
    # as held-back orders are not in fct_orders (it is listed in receivables_exceptions)
    assert [r["order_id"] for r in rows(wh, "select order_id from marts.fct_orders order by 1")] == ["OC", "OE"]
    assert rows(wh, "select payment_id from marts.fct_payments") == []
    assert one(wh, "select detail from marts.receivables_exceptions where record_id = 'PX'")


def test_a_book_whose_orders_all_wait_for_a_rate_says_so_when_it_fails(tmp_path):
    """A book kept in USD, run without rates or `reporting_currency=USD`: every order is held back, no
    customer has a value, and the checks stop the run on an empty tier table. The one-line reason says why
    (it named only the failed row-count expectation)."""
    import pytest

    from keyaccounts.checks import ChecksFailed

    inbox = write_inbox(tmp_path / "inbox", {
        "customers/part-0001.csv": f"""
            customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
            U1,US Buyer Inc,retail,local,West,Ann Lee,2024-01-01,{TS}
        """,
        "orders/part-0001.csv": f"""
            order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
            OU,U1,,2024-03-01,completed,USD,500,500,,{TS}
        """,
        "invoices/part-0001.csv": f"""
            invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at
            IU,U1,OU,2024-03-01,2024-03-31,USD,500,{TS}
        """,
    })
    with pytest.raises(ChecksFailed) as failed:
        run(inbox, tmp_path / "wh.duckdb", "2024-04")
    message = str(failed.value)
    assert "\n" not in message
    assert "1 orders row(s) and 1 invoices row(s) wait for an fx rate of their month" in message
    assert "reporting_currency" in message
