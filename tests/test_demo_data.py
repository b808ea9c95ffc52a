"""The demo data generator: deterministic output that honours the inbound contract."""

from __future__ import annotations

import csv
import importlib.util
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_demo_data.py"

# Column order as in sources.md and the worked example inbox.
EXPECTED_HEADERS = {
    "customers": "customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at",
    "orders": "order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,"
              "cost_amount,updated_at",
    "invoices": "invoice_id,customer_id,order_id,invoice_date,due_date,currency,amount,updated_at",
    "payments": "payment_id,invoice_id,customer_id,payment_date,currency,amount,method,updated_at",
    "survey_responses": "response_id,customer_id,survey_id,submitted_at,nps_score,satisfaction,"
                        "product_quality,delivery,after_sales_service,responsiveness,comment,"
                        "respondent_name,respondent_phone,respondent_email,updated_at",
    "fx_rates": "currency,month,rate_to_reporting",
}
ARGS = dict(customers=60, years=2, seed=7, end_month="2026-10")
END = date(2026, 10, 31)


def _load_module():
    # scripts/ is not a package: load the file directly (registered so dataclasses work).
    spec = importlib.util.spec_from_file_location("generate_demo_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_module()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(root: Path, feed: str) -> list[dict[str, str]]:
    rows = []
    for path in sorted((root / feed).glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("inbox")
    return root, gen.generate(root, **ARGS)


def test_same_arguments_give_byte_identical_files(inbox, tmp_path):
    first, _ = inbox
    gen.generate(tmp_path, **ARGS)
    a, b = _files(first), _files(tmp_path)
    assert sorted(a) == sorted(b)
    assert "orders/part-0002.csv" in a
    for name in a:
        assert a[name] == b[name], name


def test_different_seed_gives_different_orders(inbox, tmp_path):
    first, _ = inbox
    gen.generate(tmp_path, **{**ARGS, "seed": 8})
    assert (first / "orders/part-0001.csv").read_bytes() != (tmp_path / "orders/part-0001.csv").read_bytes()


def test_headers_encoding_and_counts(inbox):
    root, counts = inbox
    assert set(counts) == set(EXPECTED_HEADERS)
    for feed, header in EXPECTED_HEADERS.items():
        paths = sorted((root / feed).glob("*.csv"))
        assert paths, feed
        for path in paths:
            data = path.read_bytes()
            assert not data.startswith(b"\xef\xbb\xbf")  # no BOM
            assert b"\r" not in data
            assert data.decode("utf-8").split("\n", 1)[0] == header
        assert len(_rows(root, feed)) == counts[feed]
        assert counts[feed] > 0, feed


def test_customers(inbox):
    root, _ = inbox
    customers = _rows(root, "customers")
    assert len(customers) == ARGS["customers"]
    assert all(c["customer_id"].startswith("C") and len(c["customer_id"]) == 7 for c in customers)
    assert any("\u4e00" <= ch <= "\u9fff" for c in customers for ch in c["customer_name"])
    assert {c["industry"] for c in customers} <= {
        "technology", "finance", "manufacturing", "energy", "retail", "logistics",
        "healthcare", "government", "education"}
    assert {c["scope"] for c in customers} <= {"global", "national", "local"}
    assert len({c["customer_name"] for c in customers}) == len(customers)


def test_orders(inbox):
    root, _ = inbox
    orders = _rows(root, "orders")
    assert {o["status"] for o in orders} <= {"open", "completed", "cancelled", "returned"}
    for o in orders:
        assert date.fromisoformat(o["order_date"]) <= END
        assert Decimal(o["net_amount"]) <= Decimal(o["list_amount"])
        assert Decimal(o["net_amount"]) >= 0
        assert o["updated_at"].endswith("+08:00")

    # part-0002 re-delivers open orders as completed, later; the rest unchanged.
    with (root / "orders/part-0001.csv").open(encoding="utf-8", newline="") as f:
        first = {o["order_id"]: o for o in csv.DictReader(f)}
    with (root / "orders/part-0002.csv").open(encoding="utf-8", newline="") as f:
        second = list(csv.DictReader(f))
    changed = [o for o in second if o != first[o["order_id"]]]
    assert changed
    for o in changed:
        before = first[o["order_id"]]
        assert (before["status"], o["status"]) == ("open", "completed")
        assert o["updated_at"] > before["updated_at"]


def test_invoices_and_payments(inbox):
    root, _ = inbox
    invoices = {i["invoice_id"]: i for i in _rows(root, "invoices")}
    assert invoices
    for i in invoices.values():
        assert i["invoice_id"].startswith("INV")
        assert i["due_date"] >= i["invoice_date"]
        assert date.fromisoformat(i["invoice_date"]) <= END
        assert Decimal(i["amount"]) > 0
    payments = _rows(root, "payments")
    assert payments
    for p in payments:
        assert p["currency"] == invoices[p["invoice_id"]]["currency"]
        assert date.fromisoformat(p["payment_date"]) <= END
        assert Decimal(p["amount"]) > 0
        assert p["method"] in {"bank_transfer", "acceptance_bill", "cheque"}


def test_foreign_currency_has_rates(inbox):
    root, _ = inbox
    rates = {(r["currency"], r["month"]) for r in _rows(root, "fx_rates")}
    usd_months = {o["order_date"][:7] for o in _rows(root, "orders") if o["currency"] == "USD"}
    assert usd_months
    assert {("USD", m) for m in usd_months} <= rates
    # every month of history is covered for both currencies
    assert len(rates) == 2 * 12 * ARGS["years"]


def test_survey_responses(inbox):
    root, _ = inbox
    responses = _rows(root, "survey_responses")
    assert responses
    for r in responses:
        assert len(r) == len(EXPECTED_HEADERS["survey_responses"].split(","))  # quoting intact
        assert r["nps_score"] == "" or 0 <= int(r["nps_score"]) <= 10
        for col in ("satisfaction", "product_quality", "delivery", "after_sales_service", "responsiveness"):
            assert r[col] == "" or 1 <= int(r[col]) <= 5
        assert r["submitted_at"].endswith("+08:00")


def test_cli_prints_one_summary_line(tmp_path, capsys):
    assert gen.main(["--out", str(tmp_path), "--customers", "5", "--years", "1", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "orders=" in out
    assert (tmp_path / "customers/part-0001.csv").is_file()
