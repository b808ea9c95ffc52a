"""The inbound data contract of sources.md, as data.

Each feed lists its columns with a kind and whether it is required. The loader turns
this into one SQL expression per column that yields a reason code when a value breaks
the contract, so validation is set-based (DuckDB) and the rules live here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INDUSTRIES = (
    "technology", "finance", "manufacturing", "energy", "retail",
    "logistics", "healthcare", "government", "education",
)
SCOPES = ("global", "national", "local")
ORDER_STATUSES = ("open", "completed", "cancelled", "returned")
TIERS = ("A", "B", "C")
# The largest amount a row may carry (out_of_range above): no business books 10^15 on one row,
# and it keeps every converted sum and V far inside the 38 digits of the decimal types.
MAX_AMOUNT = 10**15
INTERACTION_KINDS = ("complaint", "visit", "escalation")
# ISO 4217 active codes (and the X-codes), so a typo such as "RMB" or "USd" is quarantined
ISO_4217 = tuple("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD
CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR
NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN
SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG
XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
""".split())

# sources.md "Bad input": a run in which more than this share of a feed's rows is quarantined fails
REJECT_THRESHOLD = 0.05


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text | date | timestamp | month | decimal | integer | currency
    required: bool = False
    allowed: tuple[str, ...] = ()
    min_value: float | None = None  # inclusive
    min_exclusive: bool = False
    max_value: float | None = None  # inclusive
    # personal data (survey respondents): kept in raw only, withheld from quarantine (operations.md)
    personal: bool = False
    # reason code used when a required value is missing (default `missing_<name>`)
    missing_reason: str | None = None
    # decimal places a decimal keeps (staging's type: amounts decimal(38, 8); fx rates 18, so that a
    # rate such as 1/7.1 written in full converts amounts exactly, metrics.md "Arithmetic")
    # must equal the scale of the type staging casts the column to (numbers.sql); a test ties them
    scale: int = 8
    # a required column a file may lack altogether: its rows are then quarantined one by one
    # (with missing_reason) instead of the file as a whole
    may_be_absent: bool = False


@dataclass(frozen=True)
class Feed:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # extra row rules: (reason_code, SQL predicate over typed values that must hold)
    row_rules: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required and not c.may_be_absent]


def _ts(name: str = "updated_at") -> Column:
    return Column(name, "timestamp", required=True)


FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed(
            "customers",
            ("customer_id",),
            (
                Column("customer_id", required=True),
                Column("customer_name", required=True),
                Column("industry", allowed=INDUSTRIES),
                Column("scope", allowed=SCOPES),
                Column("region"),
                Column("account_manager"),
                Column("signed_on", "date", required=True),
                _ts(),
            ),
        ),
        Feed(
            "orders",
            ("order_id",),
            (
                Column("order_id", required=True),
                Column("customer_id", required=True),
                Column("contract_id"),
                Column("order_date", "date", required=True),
                Column("status", required=True, allowed=ORDER_STATUSES),
                Column("currency", "currency"),
                Column("list_amount", "decimal", required=True, min_value=0, max_value=MAX_AMOUNT),
                Column("net_amount", "decimal", required=True, min_value=0, max_value=MAX_AMOUNT),
                Column("cost_amount", "decimal", min_value=0, max_value=MAX_AMOUNT),
                _ts(),
            ),
        ),
        Feed(
            "invoices",
            ("invoice_id",),
            (
                Column("invoice_id", required=True),
                Column("customer_id", required=True),
                Column("order_id"),
                Column("invoice_date", "date", required=True),
                Column("due_date", "date", required=True),
                Column("currency", "currency"),
                Column("amount", "decimal", required=True, min_value=0, min_exclusive=True, max_value=MAX_AMOUNT),
                _ts(),
            ),
            row_rules=(("due_before_invoice", "due_date >= invoice_date"),),
        ),
        Feed(
            "payments",
            ("payment_id",),
            (
                Column("payment_id", required=True),
                Column("invoice_id", required=True),
                Column("customer_id", required=True),
                Column("payment_date", "date", required=True),
                Column("currency", "currency"),
                Column("amount", "decimal", required=True, min_value=0, min_exclusive=True, max_value=MAX_AMOUNT),
                Column("method"),
                _ts(),
            ),
        ),
        Feed(
            "survey_responses",
            ("response_id",),
            (
                Column("response_id", required=True),
                Column("customer_id", required=True),
                Column("survey_id"),
                Column("submitted_at", "timestamp", required=True),
                Column("nps_score", "integer", min_value=0, max_value=10),
                Column("satisfaction", "integer", min_value=1, max_value=5),
                Column("product_quality", "integer", min_value=1, max_value=5),
                Column("delivery", "integer", min_value=1, max_value=5),
                Column("after_sales_service", "integer", min_value=1, max_value=5),
                Column("responsiveness", "integer", min_value=1, max_value=5),
                Column("comment"),
                Column("respondent_name", personal=True),
                Column("respondent_phone", personal=True),
                Column("respondent_email", personal=True),
                _ts(),
            ),
            optional=True,
        ),
        Feed(
            "fx_rates",
            ("currency", "month"),
            (
                Column("currency", "currency", required=True),
                Column("month", "month", required=True),
                Column("rate_to_reporting", "decimal", required=True, min_value=0, min_exclusive=True, scale=18),
            ),
            optional=True,
        ),
        Feed(
            "tier_overrides",
            ("customer_id", "eval_month"),
            (
                Column("customer_id", required=True),
                Column("eval_month", "month", required=True),
                Column("tier", required=True, allowed=TIERS),
                Column("reason", required=True),
                # sources.md: "A row without approved_by is quarantined (not_approved)", also
                # when the file has no such column
                Column("approved_by", required=True, missing_reason="not_approved", may_be_absent=True),
                _ts(),
            ),
            optional=True,
        ),
        # the key-account programme's interactions (docs/programme.md): complaints, visits, escalations
        Feed(
            "interactions",
            ("interaction_id",),
            (
                Column("interaction_id", required=True),
                Column("customer_id", required=True),
                Column("kind", required=True, allowed=INTERACTION_KINDS),
                Column("opened_at", "timestamp", required=True),
                Column("closed_at", "timestamp"),
                Column("severity", "integer", min_value=1, max_value=3),
                Column("channel"),
                _ts(),
            ),
            # compared as instants when both carry an offset, as local times when neither does;
            # a mixed pair is checked in staging, where the business time zone is known (held_back)
            row_rules=(("closed_before_opened", "closed_at >= opened_at"),),
            optional=True,
        ),
    )
}

# Machine-readable reason codes a quarantined row or file can carry (documented in
# docs/ingest.md). Column-level codes are built as `<code>:<column>`.
ROW_REASONS = {
    "missing": "a required value is empty",
    "bad_date": "not a YYYY-MM-DD date",
    "bad_timestamp": "not an ISO 8601 timestamp",
    "bad_month": "not a YYYY-MM month",
    "bad_number": "not a decimal number",
    "bad_integer": "not an integer",
    "bad_currency": "not an ISO 4217 currency code (upper case, e.g. CNY, USD)",
    "not_allowed": "value outside its allowed set",
    "out_of_range": "number outside its allowed range",
    "due_before_invoice": "due_date before invoice_date",
    "not_approved": "tier override without approved_by",
    "closed_before_opened": "interaction closed_at before its opened_at",
    "too_many_fields": "the record has more (non-empty) fields than the header",
    "nul_character": "a NUL character (byte 0) inside a value",
}
FILE_REASONS = {
    "missing_columns": "a required column is absent from the header",
    "undecodable": "bytes that are neither UTF-8 nor GB18030 text (JSON and JSONL: not UTF-8)",
    "unreadable": "not a file of its format the reader can parse (broken CSV quoting, bad JSON line, bad Parquet)",
    "empty": "no header or no bytes",
    "duplicate_columns": "two columns with the same name (case and surrounding spaces ignored)",
    "unsupported_format": "not a CSV, CSV.gz, Parquet, JSONL or JSON file (by its name)",
    "outside_inbox": "a symbolic link (or a folder link) to a file outside the inbox: not read",
}
