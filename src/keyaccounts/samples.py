"""Adapters: real public exports (shared/data/real) -> an inbox in the inbound contract.

`import_sample(name, out)` reads one data set in its own format and writes
`out/<feed>/part-0001.csv` (UTF-8, no BOM, `\\n` line ends, the contract's headers in the
contract's order, dates `YYYY-MM-DD`, timestamps ISO 8601 with offset, plain decimals).
Output is deterministic: rows are sorted by their feed's key, amounts are computed with
`decimal.Decimal` and written without exponent or trailing zeros, and every `updated_at`
is a fixed extraction timestamp of the data set (below), never the clock. A feed the data
set does not have is not written at all (the pipeline then leaves its measures null).

None of the data sets is in CNY, so each run needs `--var reporting_currency=<its currency>`
(no fx_rates rows are written; rows in the reporting currency need no rate). The full
mapping tables, with the reasons and what is lost, are in docs/samples.md.

ibm_ar  (ibm_accounts_receivable.csv: IBM Watson Analytics "late payment histories")
    Currency USD; run with `--var reporting_currency=USD --through 2013-12`.
    updated_at 2014-02-01T00:00:00+00:00 (after the last SettledDate, 2014-01-09).
    - customers: one per customerID; customer_name = customerID (no name in the file);
      region = "countryCode <code>" (five unexplained numeric codes, one per customer);
      industry, scope, account_manager empty (unknown: scope empty means a = 1.0);
      signed_on = the customer's first InvoiceDate.
    - orders: each invoice implies one completed order: order_id = invoiceNumber,
      order_date = InvoiceDate, list_amount = net_amount = InvoiceAmount, no cost.
    - invoices: invoice_id = invoiceNumber (leading zeros kept), order_id = invoiceNumber,
      invoice_date = InvoiceDate, due_date = DueDate, amount = InvoiceAmount.
    - payments: one full payment per settled invoice: payment_id = invoiceNumber,
      payment_date = SettledDate, amount = InvoiceAmount, method empty (PaperlessBill is how
      the invoice was sent, not how it was paid). Every row of the file is settled.
    - lost: Disputed, PaperlessBill, PaperlessDate (DaysToSettle and DaysLate are derived).
    Dates are M/D/YYYY.

northwind  (northwind_orders.csv, northwind_order-details.csv, northwind_customers.csv)
    Currency USD; run with `--var reporting_currency=USD --through 1998-05`.
    updated_at 1998-06-01T00:00:00+00:00 (after the last order, 1998-05-06).
    The orders and customers files are not valid CSV: addresses hold unquoted commas
    ("Rua do Paço, 67"). They are read by position: the fixed columns before the address
    from the left, the fixed columns after it from the right, the rest joined back with
    commas as the address. `NULL` (text) means empty.
    - customers: every row of northwind_customers (91, two of which never ordered);
      customer_name = companyName; region = country; industry = retail (the Northwind
      customers are food shops, delis, restaurants and importers); scope empty (unknown,
      a = 1.0); account_manager = "employee <employeeID>" who took most of the customer's
      orders (ties: the lowest id); signed_on = the customer's first orderDate, or the
      first orderDate of the whole export for a customer without orders.
    - orders: one per orderID; order_date = orderDate; status completed when shippedDate
      is set, else open; list_amount = sum(unitPrice * quantity), net_amount =
      sum(unitPrice * quantity * (1 - discount)) over the order lines, exact; no cost
      (the data has none); freight not included (a shipping charge, not goods).
    - no invoices, payments or survey_responses: the export has no receivables ledger.
      Invoices derived from shipments without any payment would show every customer as
      0% collected (e = 0.70 for all, `low_collection` everywhere); without both feeds the
      collection rate is null and e = 1.00.
    - lost: requiredDate, freight, shipVia, ship-to address, productID, contact data.

olist  (olist_orders.csv, olist_order_payments.csv, olist_order_reviews.csv, olist_customers.csv)
    Currency BRL; run with `--var reporting_currency=BRL --var business_time_zone=America/Sao_Paulo
    --through 2018-10`. updated_at 2018-11-01T00:00:00-03:00 (after the last review answer).
    Source timestamps are Brazilian local time without offset; submitted_at is written
    with the America/Sao_Paulo offset of its instant (-03:00, -02:00 in summer time), so
    the business time zone must be America/Sao_Paulo for local dates to stay as in the source.
    - customers: one per customer_unique_id (olist's customer_id is one per order);
      customer_name = customer_unique_id (the data are anonymised); region = customer_state
      of the customer's latest order; scope = local (consumers); industry and
      account_manager empty; signed_on = local date of the first purchase, any status.
    - orders: order_id; customer_id = the customer_unique_id; order_date = local date of
      order_purchase_timestamp; status: delivered -> completed, canceled and unavailable ->
      cancelled (both never ship), shipped / invoiced / processing / approved / created -> open;
      list_amount = net_amount = sum(payment_value) of the order (what the buyer paid, all
      payment types including vouchers, freight included); no cost.
    - survey_responses: one per review_id (a review that covers several orders of the same
      buyer appears once per order in the file with the same content: the row with the
      smallest order_id is kept); customer_id = the buyer's customer_unique_id;
      survey_id = "review-" + month of review_creation_date (the monthly wave);
      submitted_at = review_answer_timestamp; satisfaction = review_score (1..5);
      nps_score and the four detail scores empty; comment = review_comment_title and
      review_comment_message joined by a line break (line breaks inside the message kept
      as they are; the CSV writer quotes them).
    - no invoices or payments: marketplace orders are paid up front (credit card, boleto),
      there is no receivable; the collection rate is null and e = 1.00.
    - lost: payment type and instalments, approval / carrier / delivery dates, zip code,
      city.

superstore  (superstore_orders.csv: Tableau "Sample - Superstore", UTF-8 with BOM)
    Currency USD; run with `--var reporting_currency=USD --through 2019-12`.
    updated_at 2020-01-01T00:00:00+00:00 (after the last order, 2019-12-30).
    - customers: one per Customer ID; customer_name = Customer Name; scope by Segment:
      Corporate -> national, Home Office -> local, Consumer -> local; region = the Region the
      customer's order lines ship to most often (ties: alphabetical); industry and
      account_manager empty; signed_on = first Order Date.
    - orders: order lines grouped by Order ID, all completed (every line has a Ship Date;
      the Returns sheet is not in the export); order_date = Order Date (M/D/YYYY);
      net_amount = sum(Sales); list_amount = sum(Sales / (1 - Discount)) rounded once to
      4 decimals; cost_amount = sum(Sales - Profit) (exact; Profit may be negative).
    - no invoices, payments or survey_responses.
    - lost: Ship Date, Ship Mode, product, category, quantity, city / state / postal code.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from keyaccounts.config import PROJECT_ROOT, shared_dir
from keyaccounts.errors import InputError
from keyaccounts.ingest.contract import FEEDS

DEFAULT_DATA_DIR = shared_dir() / "data" / "real"
DATA_DIR_ENV = "KEYACCOUNTS_SAMPLE_DATA"

Row = dict[str, str]
Feeds = dict[str, list[Row]]


@dataclass(frozen=True)
class Sample:
    files: tuple[str, ...]
    adapter: Callable[[Path], Feeds]
    through: str  # the last month of the data: what `keyaccounts run --through` should take
    run_vars: tuple[str, ...]  # the `--var` settings a run needs


# ---------------------------------------------------------------- helpers


def _read_csv(path: Path, encoding: str = "utf-8") -> list[Row]:
    """A well-formed CSV file as a list of dicts of text (no type guessing)."""
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh))


def _read_positional(path: Path, n_left: int, n_right: int) -> list[Row]:
    """A CSV file whose one free-text column (position n_left) holds unquoted commas:
    take n_left fields from the left, n_right from the right, join the rest back."""
    with open(path, encoding="utf-8", newline="") as fh:
        records = list(csv.reader(fh))
    header, out = records[0], []
    if len(header) != n_left + 1 + n_right:
        raise InputError(f"{path.name}: expected {n_left + 1 + n_right} columns, the header has {len(header)}")
    for lineno, rec in enumerate(records[1:], start=2):
        if not rec:
            continue
        if len(rec) < len(header):
            raise InputError(f"{path.name} line {lineno}: {len(rec)} fields, expected at least {len(header)}")
        fields = rec[:n_left] + [",".join(rec[n_left:len(rec) - n_right])] + rec[len(rec) - n_right:]
        out.append(dict(zip(header, fields)))
    return out


def _null(value: str | None) -> str:
    """Northwind writes missing values as the text NULL."""
    value = (value or "").strip()
    return "" if value == "NULL" else value


def _us_date(value: str) -> str:
    """M/D/YYYY -> YYYY-MM-DD."""
    return datetime.strptime(value.strip(), "%m/%d/%Y").date().isoformat()


def _iso_date_prefix(value: str) -> str:
    """'1996-07-04 00:00:00.000' -> '1996-07-04' (validated)."""
    return date.fromisoformat(value.strip()[:10]).isoformat()


def _dec(value: str) -> Decimal:
    try:
        return Decimal(value.strip())
    except ArithmeticError:  # decimal's own message names no value ("[<class 'decimal.ConversionSyntax'>]")
        raise ValueError(f"{value!r} is not a number") from None


def _fmt(value: Decimal) -> str:
    """Plain decimal text: no exponent, no trailing zeros ('160', '159.6', '0.4440')."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _mode(values: Iterable[str]) -> str:
    """Most frequent value; ties go to the smallest (deterministic)."""
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def _customer(customer_id: str, name: str, signed_on: str, updated_at: str, *, industry: str = "",
              scope: str = "", region: str = "", account_manager: str = "") -> Row:
    return {"customer_id": customer_id, "customer_name": name, "industry": industry, "scope": scope,
            "region": region, "account_manager": account_manager, "signed_on": signed_on,
            "updated_at": updated_at}


def _order(order_id: str, customer_id: str, order_date: str, status: str, currency: str, list_amount: Decimal,
           net_amount: Decimal, updated_at: str, cost_amount: Decimal | None = None) -> Row:
    return {"order_id": order_id, "customer_id": customer_id, "contract_id": "", "order_date": order_date,
            "status": status, "currency": currency, "list_amount": _fmt(list_amount),
            "net_amount": _fmt(net_amount), "cost_amount": "" if cost_amount is None else _fmt(cost_amount),
            "updated_at": updated_at}


# ---------------------------------------------------------------- ibm_ar

IBM_EXTRACTED_AT = "2014-02-01T00:00:00+00:00"


def _ibm_ar(data_dir: Path) -> Feeds:
    src = _read_csv(data_dir / "ibm_accounts_receivable.csv")
    first: dict[str, str] = {}
    country: dict[str, str] = {}
    orders, invoices, payments = [], [], []
    for r in src:
        cid, number = r["customerID"].strip(), r["invoiceNumber"].strip()
        invoiced, due = _us_date(r["InvoiceDate"]), _us_date(r["DueDate"])
        amount = _dec(r["InvoiceAmount"])
        first[cid] = min(first.get(cid, invoiced), invoiced)
        country.setdefault(cid, r["countryCode"].strip())
        orders.append(_order(number, cid, invoiced, "completed", "USD", amount, amount, IBM_EXTRACTED_AT))
        invoices.append({"invoice_id": number, "customer_id": cid, "order_id": number, "invoice_date": invoiced,
                         "due_date": due, "currency": "USD", "amount": _fmt(amount),
                         "updated_at": IBM_EXTRACTED_AT})
        if r["SettledDate"].strip():
            payments.append({"payment_id": number, "invoice_id": number, "customer_id": cid,
                             "payment_date": _us_date(r["SettledDate"]), "currency": "USD",
                             "amount": _fmt(amount), "method": "", "updated_at": IBM_EXTRACTED_AT})
    customers = [_customer(cid, cid, first[cid], IBM_EXTRACTED_AT, region=f"countryCode {country[cid]}")
                 for cid in first]
    return {"customers": customers, "orders": orders, "invoices": invoices, "payments": payments}


# ---------------------------------------------------------------- northwind

NORTHWIND_EXTRACTED_AT = "1998-06-01T00:00:00+00:00"


def _northwind(data_dir: Path) -> Feeds:
    # orders: 9 columns before shipAddress, 4 after it; customers: 4 before address, 6 after
    src_orders = _read_positional(data_dir / "northwind_orders.csv", 9, 4)
    src_customers = _read_positional(data_dir / "northwind_customers.csv", 4, 6)
    lines = _read_csv(data_dir / "northwind_order-details.csv")

    list_amount: dict[str, Decimal] = defaultdict(Decimal)
    net_amount: dict[str, Decimal] = defaultdict(Decimal)
    for ln in lines:
        oid = ln["orderID"].strip()
        gross = _dec(ln["unitPrice"]) * _dec(ln["quantity"])
        list_amount[oid] += gross
        net_amount[oid] += gross * (1 - _dec(_null(ln["discount"]) or "0"))

    orders, first, employees = [], {}, defaultdict(list)
    for o in src_orders:
        oid, cid = o["orderID"].strip(), o["customerID"].strip()
        ordered = _iso_date_prefix(o["orderDate"])
        status = "completed" if _null(o["shippedDate"]) else "open"
        first[cid] = min(first.get(cid, ordered), ordered)
        if _null(o["employeeID"]):
            employees[cid].append(_null(o["employeeID"]))
        orders.append(_order(oid, cid, ordered, status, "USD", list_amount[oid], net_amount[oid],
                             NORTHWIND_EXTRACTED_AT))
    export_start = min(first.values())
    customers = []
    for c in src_customers:
        cid = c["customerID"].strip()
        manager = ""
        if employees.get(cid):
            counts = Counter(employees[cid])
            manager = "employee " + min(counts, key=lambda e: (-counts[e], int(e)))
        customers.append(_customer(cid, c["companyName"].strip(), first.get(cid, export_start),
                                   NORTHWIND_EXTRACTED_AT, industry="retail", region=_null(c["country"]),
                                   account_manager=manager))
    return {"customers": customers, "orders": orders}


# ---------------------------------------------------------------- olist

OLIST_TZ = ZoneInfo("America/Sao_Paulo")
OLIST_EXTRACTED_AT = "2018-11-01T00:00:00-03:00"
OLIST_STATUS = {"delivered": "completed", "canceled": "cancelled", "unavailable": "cancelled",
                "shipped": "open", "invoiced": "open", "processing": "open", "approved": "open", "created": "open"}


def _sao_paulo(value: str) -> str:
    """Local 'YYYY-MM-DD HH:MM:SS' (Brazil) -> ISO 8601 with the offset of that local time."""
    local = datetime.fromisoformat(value.strip()).replace(tzinfo=OLIST_TZ)
    return local.isoformat()


def _olist(data_dir: Path) -> Feeds:
    src_orders = _read_csv(data_dir / "olist_orders.csv")
    src_payments = _read_csv(data_dir / "olist_order_payments.csv")
    src_reviews = _read_csv(data_dir / "olist_order_reviews.csv")
    src_customers = _read_csv(data_dir / "olist_customers.csv")

    buyer = {c["customer_id"]: c for c in src_customers}  # olist customer_id: one per order
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for p in src_payments:
        paid[p["order_id"]] += _dec(p["payment_value"])

    orders, order_buyer, history = [], {}, defaultdict(list)
    for o in src_orders:
        oid = o["order_id"]
        if o["customer_id"] not in buyer:
            raise InputError(f"olist_orders.csv: order {oid} has customer_id {o['customer_id']} "
                             "that is not in olist_customers.csv")
        c = buyer[o["customer_id"]]
        uid = c["customer_unique_id"]
        order_buyer[oid] = uid
        purchased = o["order_purchase_timestamp"].strip()
        history[uid].append((purchased, oid, c["customer_state"].strip()))
        status = OLIST_STATUS.get(o["order_status"].strip())
        if status is None:
            raise InputError(f"olist_orders.csv: order {oid} has an unknown order_status {o['order_status']!r}")
        orders.append(_order(oid, uid, purchased[:10], status, "BRL", paid[oid], paid[oid], OLIST_EXTRACTED_AT))

    customers = []
    for uid, events in history.items():
        events.sort()
        customers.append(_customer(uid, uid, events[0][0][:10], OLIST_EXTRACTED_AT, scope="local",
                                   region=events[-1][2]))

    responses: dict[str, Row] = {}
    for r in sorted(src_reviews, key=lambda r: (r["review_id"], r["order_id"])):
        rid = r["review_id"]
        if rid in responses or r["order_id"] not in order_buyer:
            continue  # the same review once per order it covers: keep the first order's row
        title, message = r["review_comment_title"].strip(), r["review_comment_message"]
        comment = "\n".join(part for part in (title, message) if part.strip())
        responses[rid] = {
            "response_id": rid, "customer_id": order_buyer[r["order_id"]],
            "survey_id": "review-" + r["review_creation_date"].strip()[:7],
            "submitted_at": _sao_paulo(r["review_answer_timestamp"]), "nps_score": "",
            "satisfaction": str(int(r["review_score"])), "product_quality": "", "delivery": "",
            "after_sales_service": "", "responsiveness": "", "comment": comment, "respondent_name": "",
            "respondent_phone": "", "respondent_email": "", "updated_at": OLIST_EXTRACTED_AT}
    return {"customers": customers, "orders": orders, "survey_responses": list(responses.values())}


# ---------------------------------------------------------------- superstore

SUPERSTORE_EXTRACTED_AT = "2020-01-01T00:00:00+00:00"
SUPERSTORE_SCOPE = {"Corporate": "national", "Home Office": "local", "Consumer": "local"}
FOUR_PLACES = Decimal("0.0001")


def _superstore(data_dir: Path) -> Feeds:
    src = _read_csv(data_dir / "superstore_orders.csv", encoding="utf-8-sig")
    heads: dict[str, tuple[str, str]] = {}
    net: dict[str, Decimal] = defaultdict(Decimal)
    lst: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    info: dict[str, dict] = {}
    regions: dict[str, list[str]] = defaultdict(list)
    for r in src:
        oid, cid = r["Order ID"].strip(), r["Customer ID"].strip()
        ordered = _us_date(r["Order Date"])
        if heads.setdefault(oid, (cid, ordered)) != (cid, ordered):
            raise InputError(f"superstore_orders.csv: order {oid} has lines of different customers or dates")
        sales, discount, profit = _dec(r["Sales"]), _dec(r["Discount"]), _dec(r["Profit"])
        net[oid] += sales
        lst[oid] += sales / (1 - discount)
        cost[oid] += sales - profit
        c = info.setdefault(cid, {"name": r["Customer Name"].strip(), "segment": r["Segment"].strip(),
                                  "first": ordered})
        c["first"] = min(c["first"], ordered)
        regions[cid].append(r["Region"].strip())
    orders = [_order(oid, cid, ordered, "completed", "USD", lst[oid].quantize(FOUR_PLACES, ROUND_HALF_UP),
                     net[oid], SUPERSTORE_EXTRACTED_AT, cost[oid])
              for oid, (cid, ordered) in heads.items()]
    customers = []
    for cid, c in info.items():
        if c["segment"] not in SUPERSTORE_SCOPE:
            raise InputError(f"superstore_orders.csv: customer {cid} has an unknown Segment {c['segment']!r}")
        customers.append(_customer(cid, c["name"], c["first"], SUPERSTORE_EXTRACTED_AT,
                                   scope=SUPERSTORE_SCOPE[c["segment"]], region=_mode(regions[cid])))
    return {"customers": customers, "orders": orders}


# ---------------------------------------------------------------- entry point

SAMPLES: dict[str, Sample] = {
    "ibm_ar": Sample(("ibm_accounts_receivable.csv",), _ibm_ar, "2013-12", ("reporting_currency=USD",)),
    "northwind": Sample(("northwind_orders.csv", "northwind_order-details.csv", "northwind_customers.csv"),
                        _northwind, "1998-05", ("reporting_currency=USD",)),
    "olist": Sample(("olist_orders.csv", "olist_order_payments.csv", "olist_order_reviews.csv",
                     "olist_customers.csv"), _olist, "2018-10",
                    ("reporting_currency=BRL", "business_time_zone=America/Sao_Paulo")),
    "superstore": Sample(("superstore_orders.csv",), _superstore, "2019-12", ("reporting_currency=USD",)),
}


def default_data_dir() -> Path:
    """../shared/data/real beside the project; when that folder is absent, $KEYACCOUNTS_SAMPLE_DATA."""
    if DEFAULT_DATA_DIR.is_dir() or not os.environ.get(DATA_DIR_ENV):
        return DEFAULT_DATA_DIR
    return Path(os.environ[DATA_DIR_ENV])


def _write_feed(out: Path, feed: str, rows: list[Row]) -> None:
    columns = FEEDS[feed].column_names
    key = FEEDS[feed].key
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    folder = out / feed
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "part-0001.csv"
    partial = folder / "part-0001.csv.part"  # the loader leaves *.part files alone
    with open(partial, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n", extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, target)


def import_sample(name: str, out: Path, data_dir: Path | None = None) -> dict[str, int]:
    """Map the public data set `name` to an inbox at `out`; returns the rows written per feed."""
    sample = SAMPLES.get(name)
    if sample is None:
        raise InputError(f"unknown sample {name!r}: expected one of {', '.join(SAMPLES)}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    for file in sample.files:
        if not (data_dir / file).is_file():
            hint = "" if data_dir != DEFAULT_DATA_DIR else f" (pass --data-dir or set {DATA_DIR_ENV})"
            raise InputError(f"sample {name}: input file {data_dir / file} not found{hint}")
    try:
        feeds = sample.adapter(data_dir)
    except (KeyError, ValueError, ArithmeticError) as exc:  # a column or value the adapter cannot read
        raise InputError(f"sample {name}: cannot map {data_dir} (the data set's own export, unchanged, is "
                         f"expected): {type(exc).__name__}: {exc}") from None
    if not feeds.get("orders"):  # an empty or truncated export: an inbox without orders evaluates nothing
        raise InputError(f"sample {name}: {data_dir / sample.files[0]} holds no order rows to map")
    out = Path(out)
    for feed, rows in feeds.items():
        _write_feed(out, feed, rows)
    return {feed: len(rows) for feed, rows in feeds.items()}
