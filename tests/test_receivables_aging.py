"""metrics.md "Receivables" against a brute-force reference written from the spec's text: for
every customer and evaluation month, each invoice is looked at on its own (invoice x month, the
way the rule reads), on seeded random invoices and payments chosen to sit on the edges: due
dates 0, 1, 30, 31, 60, 61, 90 and 91 days before a month's end, payments before the invoice
month, partial, over- and after-the-cut-off payments, credit-sized and zero amounts.

The pipeline computes the same figures as running sums of events (int_invoice_open_pieces,
int_receivables_windows); the two must agree to the cent in every customer-month."""

from __future__ import annotations

import calendar
import random
from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from conftest import rows, run, write_inbox

THROUGH = (2024, 6)
FIRST = (2023, 1)
CUSTOMERS = ["R1", "R2", "R3", "甲客户"]
TS = "2024-07-05T08:00:00+08:00"


def month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def months(first=FIRST, last=THROUGH):
    y, m = first
    while (y, m) <= last:
        yield y, m
        y, m = (y + (m == 12), m % 12 + 1)


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def generate(seed: int = 20261123):
    rnd = random.Random(seed)
    cutoff = month_end(*THROUGH)
    invoices, payments = [], []
    for c in CUSTOMERS:
        for k in range(45):
            ym = rnd.choice(list(months()))
            end = month_end(*ym)
            # due a boundary number of days before some month's end, or anywhere
            if rnd.random() < 0.7:
                y2, m2 = rnd.choice([x for x in months() if x >= ym])
                due = month_end(y2, m2) - timedelta(days=rnd.choice([0, 1, 30, 31, 60, 61, 90, 91, -1]))
            else:
                due = end + timedelta(days=rnd.randint(-20, 200))
            inv_date = min(date(ym[0], ym[1], rnd.randint(1, end.day)), due)
            if inv_date > cutoff:
                continue
            amount = D(rnd.choice([0, 1, 50, 999, rnd.randint(1, 500_000)])) + D(rnd.randint(0, 99)) / 100
            inv_id = f"INV-{c}-{k:03d}"
            invoices.append((inv_id, c, inv_date, due, amount))
            for j in range(rnd.choice([0, 0, 1, 1, 2, 3])):
                pay_date = inv_date + timedelta(days=rnd.randint(-40, 400))  # some before, some after cut-off
                share = rnd.choice([D("0.25"), D("0.5"), D("1"), D("0.7"), D("1.3")])
                pay_amount = (amount * share).quantize(D("0.01"))
                payments.append((f"PAY-{c}-{k:03d}-{j}", inv_id, c, pay_date, pay_amount))
    return invoices, payments


def reference(invoices, payments):
    """Per (customer, 'YYYY-MM'): the receivables measures, one invoice at a time."""
    by_invoice: dict[str, list[tuple[date, D]]] = {}
    for _, inv_id, _, pay_date, amount in payments:
        by_invoice.setdefault(inv_id, []).append((pay_date, amount))
    out = {}
    for c in CUSTOMERS:
        for y, m in months():
            end = month_end(y, m)
            idx = y * 12 + m - 1
            r = {"billed_due_12m": D(0), "collected_12m": D(0), "paid_on_time_12m": D(0), "outstanding_end": D(0),
                 "aging_not_due": D(0), "aging_overdue_1_30": D(0), "aging_overdue_31_60": D(0),
                 "aging_overdue_61_90": D(0), "aging_overdue_90_plus": D(0), "open_invoices": 0}
            for inv_id, cust, inv_date, due, amount in invoices:
                if cust != c:
                    continue
                pays = by_invoice.get(inv_id, [])
                paid_by_end = sum((a for d_, a in pays if d_ <= end), D(0))
                if idx - 11 <= month_index(due) <= idx:  # due in W(M)
                    r["billed_due_12m"] += amount
                    r["collected_12m"] += min(amount, paid_by_end)
                    r["paid_on_time_12m"] += min(amount, sum((a for d_, a in pays if d_ <= due), D(0)))
                if inv_date <= end:
                    left = max(D(0), amount - paid_by_end)
                    if left > 0:
                        r["outstanding_end"] += left
                        r["open_invoices"] += 1
                        dpd = (end - due).days
                        bucket = ("aging_not_due" if dpd <= 0 else "aging_overdue_1_30" if dpd <= 30
                                  else "aging_overdue_31_60" if dpd <= 60 else "aging_overdue_61_90" if dpd <= 90
                                  else "aging_overdue_90_plus")
                        r[bucket] += left
            out[(c, f"{y:04d}-{m:02d}")] = r
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    invoices, payments = generate()
    root = tmp_path_factory.mktemp("aging")
    header_c = "customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at"
    files = {
        "customers/part-0001.csv": "\n".join(
            [header_c] + [f"{c},{c} 公司,technology,local,East,王敏,2022-12-01,{TS}" for c in CUSTOMERS]),
        # one completed order per customer in the first month: the evaluation months start there
        "orders/part-0001.csv": "\n".join(
            ["order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at"]
            + [f"O-{c},{c},,2023-01-05,completed,CNY,100,100,,{TS}" for c in CUSTOMERS]),
        "invoices/part-0001.csv": "\n".join(
            ["invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at"]
            + [f"{i},{c},,{d},{due},CNY,{a},{TS}" for i, c, d, due, a in invoices]),
        "payments/part-0001.csv": "\n".join(
            ["payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at"]
            + [f"{p},{i},{c},{d},CNY,{a},bank_transfer,{TS}" for p, i, c, d, a in payments]),
    }
    inbox = write_inbox(root / "inbox", files)
    warehouse = root / "wh.duckdb"
    run(inbox, warehouse, f"{THROUGH[0]:04d}-{THROUGH[1]:02d}")
    return warehouse, reference(invoices, payments), invoices, payments


def test_the_generated_data_reaches_every_edge(built):
    """The data must exercise what the reference checks, or agreement means little."""
    _, ref, invoices, payments = built
    buckets = {b for r in ref.values() for b in r if b.startswith("aging_") and r[b] > 0}
    assert buckets == {"aging_not_due", "aging_overdue_1_30", "aging_overdue_31_60", "aging_overdue_61_90",
                       "aging_overdue_90_plus"}
    inv = {i: (d, a) for i, _, d, _, a in invoices}
    assert any(p_date < inv[i][0].replace(day=1) for _, i, _, p_date, _ in payments)  # before the invoice month
    assert any(p_date > month_end(*THROUGH) for _, _, _, p_date, _ in payments)  # after the cut-off
    paid = {}
    for _, i, _, _, a in payments:
        paid[i] = paid.get(i, D(0)) + a
    assert any(paid[i] > inv[i][1] for i in paid)  # overpaid
    assert len(ref) == len(CUSTOMERS) * 18


def test_receivables_measures_match_the_spec_in_every_customer_month(built):
    warehouse, ref, _, _ = built
    got = {(r["customer_id"], r["eval_month"]): r for r in rows(warehouse, """
        select * from marts.customer_receivables_monthly""")}
    assert set(got) == set(ref)
    mismatches = []
    for key, want in ref.items():
        for col, value in want.items():
            if got[key][col] != value:
                mismatches.append((key, col, got[key][col], value))
    assert not mismatches, mismatches[:10]
