"""Benchmark: the pipeline beside a one-query DuckDB floor and a plain pandas implementation.

    .venv/bin/python scripts/benchmark.py --scale S|M|L [--json FILE] [--csv] [--workdir DIR]
        [--ref GIT-REF] [--skip-pipeline] [--floor-memory-limit 8GB] [--rss-limit-gb 16]

One run
1. generates (or reuses) a deterministic inbox at the scale: every feed of sources.md over three
   years, as Parquet (as CSV with --csv); vectorised (numpy/pyarrow), written in chunks;
2. computes the tier table of the latest month three ways, from the same files:
   - the floor: one hand-written DuckDB query (scripts/benchmark_floor.sql);
   - pandas: a straightforward pandas/numpy implementation (`pandas_tier_table` below);
   - the pipeline: `keyaccounts run --through <latest month>` in a child process, timed per
     stage (ingest, dbt build, checks, publish: swap, exports, report, BI copy) with its peak RSS;
3. delivers a daily increment (about 1% new and changed rows of every feed, in new files) and runs
   the pipeline again (and the floor, to check the pipeline's result after the increment), then
   once more with nothing new (a daily run on a quiet day: it should cost its ingest only);
4. checks that the three tier tables agree (customer, value_score to the cent, rank, raw tier,
   tier, previous tier, change) and exits non-zero, printing the first differing rows, when not;
5. prints a table of the figures with the targets of issue 8, and writes them to --json.

The floor and pandas each run in a child process too, so that every figure is a wall time of its
own process (imports included) and the benchmark's own memory does not count.
Figures and the profile at S, M and L on a 2-core machine: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
FLOOR_SQL = SCRIPTS / "benchmark_floor.sql"

# scale -> (customers, orders); three years of history ending END_MONTH
SCALES = {"S": (2_000, 20_000), "M": (20_000, 2_000_000), "L": (200_000, 20_000_000)}
END_MONTH = "2026-10"
YEARS = 3
SEED = 20240601
CHUNK_ORDERS = 2_000_000  # orders per generated block (one file per feed and block)
GENERATOR_VERSION = 2  # bump when the generated data changes (the inbox is regenerated)
BUSINESS_TZ = "Asia/Shanghai"
REPORTING_CURRENCY = "CNY"
GRACE_MONTHS = 1

FEED_COLUMNS = {
    "customers": ["customer_id", "customer_name", "industry", "scope", "region", "account_manager",
                  "signed_on", "updated_at"],
    "orders": ["order_id", "customer_id", "contract_id", "order_date", "status", "currency",
               "list_amount", "net_amount", "cost_amount", "updated_at"],
    "invoices": ["invoice_id", "customer_id", "order_id", "invoice_date", "due_date", "currency", "amount",
                 "updated_at"],
    "payments": ["payment_id", "invoice_id", "customer_id", "payment_date", "currency", "amount", "method",
                 "updated_at"],
    "survey_responses": ["response_id", "customer_id", "survey_id", "submitted_at", "nps_score",
                         "satisfaction", "product_quality", "delivery", "after_sales_service",
                         "responsiveness", "comment", "respondent_name", "respondent_phone",
                         "respondent_email", "updated_at"],
    "fx_rates": ["currency", "month", "rate_to_reporting"],
    "tier_overrides": ["customer_id", "eval_month", "tier", "reason", "approved_by", "updated_at"],
}
COMPARE_COLUMNS = ["customer_id", "value_score", "value_rank", "raw_tier", "tier", "previous_tier", "tier_change"]
TARGETS = {  # issue 8
    "L": {"pipeline_vs_floor": 2.0, "pandas_vs_pipeline": 5.0},
    "M": {"pipeline_vs_floor": 4.0, "pandas_vs_pipeline": 5.0},
}
INCREMENT_SHARE_TARGET = 0.10
PEAK_RSS_TARGET_MB = 8 * 1024


def _demo_module():
    """scripts/generate_demo_data.py, for its vocabulary (names, industries, regions, managers).
    Its generator itself loops in Python per row and writes CSV only, so the data are made here."""
    spec = importlib.util.spec_from_file_location("generate_demo_data", SCRIPTS / "generate_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# months and days
# ---------------------------------------------------------------------------------------------

def month_index(text: str) -> int:
    y, m = (int(p) for p in text.split("-"))
    return y * 12 + m - 1


def month_text(m: int) -> str:
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def _day(y: int, m: int, d: int) -> int:
    return int(np.datetime64(f"{y:04d}-{m:02d}-{d:02d}", "D").astype(np.int64))


def _month_first_day(m: int) -> int:
    return _day(m // 12, m % 12 + 1, 1)


def _days_to_months(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + 1970 * 12


# ---------------------------------------------------------------------------------------------
# data generation (vectorised, deterministic from the seed)
# ---------------------------------------------------------------------------------------------

@dataclass
class Window:
    first_m: int
    last_m: int
    start_day: int  # first day of the history
    end_day: int  # last day of the history (end of the latest month)
    extract_s: int  # local seconds since epoch: the instant the extract is taken (caps updated_at)


def _window(end_month: str = END_MONTH, years: int = YEARS) -> Window:
    last_m = month_index(end_month)
    first_m = last_m - 12 * years + 1
    end_day = _month_first_day(last_m + 1) - 1
    return Window(first_m, last_m, _month_first_day(first_m), end_day, (end_day + 1) * 86400 + 6 * 3600)


def _pa():
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def _ids(prefix: str, numbers: np.ndarray, width: int):
    pa, pc = _pa()
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


_TIME_OF_DAY = None


def _timestamps(local_seconds: np.ndarray):
    """ISO 8601 text with the business offset (+08:00), e.g. 2026-10-01T09:30:00+08:00: built from
    lookup tables of the days and of the 86,400 times of day (fast, no per-row formatting)."""
    global _TIME_OF_DAY
    pa, pc = _pa()
    if _TIME_OF_DAY is None:
        sod = np.arange(86400)
        hms = [np.char.zfill((x).astype(str), 2) for x in (sod // 3600, sod // 60 % 60, sod % 60)]
        _TIME_OF_DAY = pa.array(np.char.add(np.char.add(np.char.add(np.char.add(hms[0], ":"), hms[1]), ":"), hms[2]))
    secs = np.asarray(local_seconds, dtype=np.int64)
    days, sod = np.divmod(secs, 86400)
    d0 = int(days.min()) if len(days) else 0
    dates = pa.array(np.datetime_as_string(np.arange(d0, d0 + (int(days.max()) - d0 + 1 if len(days) else 0))
                                           .astype("datetime64[D]")))
    text = pc.binary_join_element_wise(dates.take(pa.array(days - d0)), _TIME_OF_DAY.take(pa.array(sod)), "T")
    return pc.binary_join_element_wise(text, "+08:00", "")


def _coded(values: list[str], codes: np.ndarray):
    """Strings from small integer codes (a take from the list of values)."""
    pa, _ = _pa()
    return pa.array(values, pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def _dates(days: np.ndarray):
    pa, _ = _pa()
    return pa.array(days.astype(np.int32), pa.date32())


def _decimal(units: np.ndarray, scale: int, valid: np.ndarray | None = None):
    """decimal128(18, scale) from integer units of 10^-scale (exact, no float on the way)."""
    pa, _ = _pa()
    units = np.ascontiguousarray(units, dtype=np.int64)
    buf = np.empty((len(units), 2), dtype=np.int64)
    buf[:, 0] = units
    buf[:, 1] = units >> 63
    validity = None if valid is None else pa.array(np.asarray(valid, dtype=bool)).buffers()[1]
    return pa.Array.from_buffers(pa.decimal128(18, scale), len(units), [validity, pa.py_buffer(buf.tobytes())],
                                 null_count=-1)


def _strings(values: np.ndarray, valid: np.ndarray | None = None):
    pa, _ = _pa()
    return pa.array(values, pa.string(), mask=None if valid is None else ~np.asarray(valid, dtype=bool))


def _choice(rng, options, weights, n):
    w = np.asarray(weights, dtype=float)
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=w / w.sum())]


def _write(table, path: Path, fmt: str) -> int:
    """Write atomically (the pipeline skips `.tmp` names, so a half-written file is never taken)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp, compression="zstd", row_group_size=500_000)
    else:
        pacsv.write_csv(table, tmp)
    os.replace(tmp, path)
    return table.num_rows


class Customers:
    """The customer master plus the latent traits that drive every other feed."""

    def __init__(self, n: int, w: Window, seed: int):
        demo = _demo_module()
        rng = np.random.default_rng([seed, 1])
        self.n = n
        self.ids = np.arange(1, n + 1)
        self.industry = _choice(rng, list(demo.INDUSTRY_WEIGHTS), list(demo.INDUSTRY_WEIGHTS.values()), n)
        self.scope = _choice(rng, ["global", "national", "local"], [5, 30, 65], n)
        self.region = _choice(rng, demo.REGIONS, demo.REGION_WEIGHTS, n)
        managers = np.array([demo.MANAGERS[r][k] for r, k in zip(self.region, rng.integers(0, 2, n))], dtype=object)
        director = (self.scope == "global") & (rng.random(n) < 0.7)
        self.manager = np.where(director, demo.KA_DIRECTOR, managers)
        # names: Chinese company names (a few Latin ones), made unique by a branch number
        cities = np.asarray(demo.CN_CITIES, dtype=object)[rng.integers(0, len(demo.CN_CITIES), n)]
        prefixes = np.asarray(demo.CN_PREFIXES, dtype=object)[rng.integers(0, len(demo.CN_PREFIXES), n)]
        cores = np.array([demo.CN_CORES.get(i, ["科技"])[k % len(demo.CN_CORES.get(i, ["科技"]))]
                          for i, k in zip(self.industry, rng.integers(0, 6, n))], dtype=object)
        suffixes = np.asarray(demo.CN_SUFFIXES, dtype=object)[rng.integers(0, len(demo.CN_SUFFIXES), n)]
        latin = rng.random(n) < 0.2
        latin_names = np.array([f"{demo.LATIN_FIRST[a % len(demo.LATIN_FIRST)]} {s}"
                                for a, s in zip(rng.integers(0, 1000, n), np.asarray(demo.LATIN_SUFFIXES, dtype=object)[
                                    rng.integers(0, len(demo.LATIN_SUFFIXES), n)])], dtype=object)
        cn_names = cities + prefixes + cores + suffixes
        self.name = np.where(latin, latin_names, cn_names) + np.char.mod("（%d）", self.ids).astype(object)
        # 60% were customers before the history starts, the rest sign during it
        span = w.end_day - w.start_day
        before = rng.random(n) < 0.6
        self.signed_on = np.where(before, w.start_day - rng.integers(1, 8 * 365, n),
                                  w.start_day + rng.integers(0, span - 45, n))
        touched = np.maximum(self.signed_on, w.start_day - 400)
        upd = (touched + rng.integers(1, np.maximum(2, w.end_day - touched))) * 86400 + rng.integers(8 * 3600, 20 * 3600, n)
        self.updated_s = np.minimum(upd, w.extract_s - rng.integers(0, 5 * 3600, n))
        # latent traits
        self.health = rng.normal(size=n)
        size = rng.normal(size=n)
        scope_mult = np.select([self.scope == "global", self.scope == "national"], [4.0, 1.6], 1.0)
        self.order_value = 18000 * scope_mult * np.exp(1.1 * size + 0.4 * rng.normal(size=n))
        self.order_weight = np.exp(0.45 * size + 0.5 * rng.normal(size=n))
        kind = rng.random(n)
        self.growth = np.select([kind < 0.2, kind < 0.4], [rng.uniform(0.15, 0.6, n), -rng.uniform(0.15, 0.6, n)],
                                rng.uniform(-0.08, 0.08, n)) + 0.08 * self.health
        churns = rng.random(n) < np.where(self.health > 0, 0.07, 0.17)
        lo = np.maximum(self.signed_on + 120, w.start_day + 90)
        hi = w.end_day - 30
        churn_day = lo + (rng.random(n) * np.maximum(0, hi - lo)).astype(np.int64)
        self.churn_day = np.where(churns & (lo < hi), churn_day, np.iinfo(np.int64).max // 2)
        self.terms = np.select([np.isin(self.industry, ["government", "education"]), self.scope == "global"],
                               [rng.choice([45, 60, 60], n), rng.choice([45, 60], n)], rng.choice([30, 30, 45, 60], n))
        p_fx = np.select([self.scope == "global", self.scope == "national"], [0.35, 0.05], 0.02)
        has_fx = rng.random(n) < p_fx
        self.fx_currency = np.where(has_fx, np.where(rng.random(n) < 0.7, 1, 2), 0)  # 0 CNY, 1 USD, 2 EUR
        self.fx_share = rng.uniform(0.3, 0.8, n)
        self.has_contracts = rng.random(n) < np.where(self.scope == "local", 0.65, 0.9)
        score = 0.8 * self.health + 0.6 * rng.normal(size=n)
        self.payer = np.select([score < -1.75, score < -1.15, score < -0.5], [3, 2, 1], 0)  # good/late/partial/defaulter
        self.method = rng.choice(3, size=n, p=[0.70, 0.22, 0.08])  # codes into METHODS
        # the active span of each customer and its expected share of the orders
        self.lo = np.maximum(w.start_day, self.signed_on)
        self.hi = np.minimum(w.end_day, self.churn_day - 1)
        active_days = np.maximum(0, self.hi - self.lo + 1)
        self.expected = self.order_weight * active_days

    def cid(self, idx: np.ndarray):
        return _ids("C", self.ids[idx], 7)

    def table(self):
        pa, _ = _pa()
        return pa.table({
            "customer_id": self.cid(np.arange(self.n)),
            "customer_name": _strings(self.name),
            "industry": _strings(self.industry),
            "scope": _strings(self.scope),
            "region": _strings(self.region),
            "account_manager": _strings(self.manager),
            "signed_on": _dates(self.signed_on),
            "updated_at": _timestamps(self.updated_s),
        })


CURRENCIES = ["CNY", "USD", "EUR"]
METHODS = ["bank_transfer", "acceptance_bill", "cheque"]


def _fx_table(w: Window, seed: int) -> tuple[np.ndarray, object]:
    """rate[currency, month - first_m] in units of 1e-4 CNY (a random walk per currency)."""
    pa, _ = _pa()
    rng = np.random.default_rng([seed, 2])
    n = w.last_m - w.first_m + 1
    rates = np.zeros((3, n), dtype=np.int64)
    rates[0] = 10_000
    for k, (level, step, lo, hi) in ((1, (7.2, 0.02, 7.10, 7.30)), (2, (7.8, 0.05, 7.60, 8.00))):
        x = level
        for j in range(n):
            x = min(hi, max(lo, x + rng.normal(0, step)))
            rates[k, j] = int(round(x * 10_000))
    cur = np.repeat(CURRENCIES[1:], n).astype(object)
    months = np.tile([month_text(m) for m in range(w.first_m, w.last_m + 1)], 2)
    table = pa.table({"currency": _strings(cur), "month": _strings(months),
                      "rate_to_reporting": _decimal(rates[1:].ravel(), 4)})
    return rates, table


@dataclass
class Counters:
    order: int = 0
    invoice: int = 0
    payment: int = 0
    response: int = 0


STATUSES = ["completed", "open", "cancelled", "returned"]


def _status(rng, days_before_end: np.ndarray) -> np.ndarray:
    """Codes into STATUSES. Recent orders are often not delivered yet; a few old ones are stuck open."""
    p_open = np.select([days_before_end < 14, days_before_end < 60], [0.35, 0.08], 0.002)
    x = rng.random(len(days_before_end))
    return np.select([x < p_open, x < p_open + 0.03, x < p_open + 0.045], [1, 2, 3], 0)


def _block(cust: Customers, members: np.ndarray, counts: np.ndarray, w: Window, rates: np.ndarray, seed: int,
           block: int, ctr: Counters, orphans: int) -> dict:
    """Orders, invoices, payments and survey answers of one block of customers."""
    pa, _ = _pa()
    rng = np.random.default_rng([seed, 100 + block])
    ci = np.repeat(members, counts[members])
    n = len(ci)
    # order dates: density grows (or shrinks) exponentially with the customer's growth rate
    lo, hi, g = cust.lo[ci], cust.hi[ci], cust.growth[ci]
    span_y = (hi - lo + 1) / 365.25
    u = rng.random(n)
    g_safe = np.where(np.abs(g) < 1e-6, 1e-6, g)
    t = np.log1p(u * np.expm1(g_safe * span_y)) / g_safe
    day = np.minimum(hi, lo + (t * 365.25).astype(np.int64))
    month = _days_to_months(day)
    years_in = (day - w.start_day) / 365.25
    cny = np.maximum(50.0, cust.order_value[ci] * np.exp(0.3 * g * years_in) * rng.lognormal(-0.1, 0.45, n))
    cur = np.where((cust.fx_currency[ci] > 0) & (rng.random(n) < cust.fx_share[ci]), cust.fx_currency[ci], 0)
    rate = rates[cur, month - w.first_m]  # 1e-4 units
    net = np.maximum(1, np.rint(cny * 100 * 10_000 / rate)).astype(np.int64)  # cents of the order's currency
    discount = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.0, 0.2, n))
    list_amount = np.rint(net / (1 - discount)).astype(np.int64)
    has_cost = rng.random(n) >= 0.05
    cost = np.rint(net * rng.uniform(0.6, 0.85, n)).astype(np.int64)
    status = _status(rng, w.end_day - day)
    lag_lo = np.select([status == 1, status == 0], [0, 1], 3)
    lag_hi = np.select([status == 1, status == 0], [2, 25], 40)
    upd = (day + lag_lo + (rng.random(n) * (lag_hi - lag_lo + 1)).astype(np.int64)) * 86400 \
        + rng.integers(8 * 3600, 20 * 3600, n)
    upd = np.minimum(upd, w.extract_s - rng.integers(0, 5 * 3600, n))
    has_contract = cust.has_contracts[ci] & (rng.random(n) > 0.05)
    year = day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    order_no = ctr.order + 1 + np.arange(n)
    ctr.order += n
    cids = cust.cid(ci)
    if orphans:  # orders (and their invoices) of customers not in the master yet: kept, not evaluated
        k = min(orphans, n)
        cids = pa.concat_arrays([_ids("X", np.arange(1, k + 1), 7), cids[k:]])
    contract = pa.compute.binary_join_element_wise("CT-", cids, "-", pa.compute.cast(pa.array(year), pa.string()), "")
    contract = pa.compute.if_else(pa.array(has_contract), contract, pa.nulls(n, pa.string()))
    orders = {
        "order_id": _ids("SO", order_no, 9), "customer_id": cids, "contract_id": contract,
        "order_date": _dates(day), "status": _coded(STATUSES, status), "currency": _coded(CURRENCIES, cur),
        "list_amount": _decimal(list_amount, 2), "net_amount": _decimal(net, 2),
        "cost_amount": _decimal(cost, 2, has_cost), "updated_at": _timestamps(upd),
    }

    # invoices: one per completed order, dated 0-5 days after it, due after the customer's terms
    done = np.flatnonzero(status == 0)
    inv_day = day[done] + rng.integers(0, 6, len(done))
    keep = inv_day <= w.end_day
    done, inv_day = done[keep], inv_day[keep]
    m_inv = len(done)
    inv_ci = ci[done]
    due_day = inv_day + cust.terms[inv_ci]
    inv_amount = net[done]
    inv_cur = cur[done]
    inv_no = ctr.invoice + 1 + np.arange(m_inv)
    ctr.invoice += m_inv
    inv_upd = np.minimum((inv_day + rng.integers(0, 3, m_inv)) * 86400 + rng.integers(8 * 3600, 20 * 3600, m_inv),
                         w.extract_s - rng.integers(0, 5 * 3600, m_inv))
    inv_ids = _ids("INV", inv_no, 9)
    invoices = {
        "invoice_id": inv_ids, "customer_id": cids.take(pa.array(done)),
        "order_id": orders["order_id"].take(pa.array(done)), "invoice_date": _dates(inv_day),
        "due_date": _dates(due_day), "currency": _coded(CURRENCIES, inv_cur),
        "amount": _decimal(inv_amount, 2), "updated_at": _timestamps(inv_upd),
    }

    # payments: on time, late, partial or never, by the customer's payer profile
    payer = cust.payer[inv_ci]
    u0, u1, u2, x = (rng.random(m_inv) for _ in range(4))
    on_time = np.clip(np.rint(rng.normal(-2, 4, m_inv)), -20, 7).astype(np.int64)

    def late(lo_, mode):
        return np.rint(rng.triangular(lo_, mode, 120, m_inv)).astype(np.int64)

    offset = np.select(
        [(payer == 0) & (u1 < 0.06), payer == 0, (payer == 1) & (u1 < 0.8), payer == 1,
         (payer == 2) & (u1 < 0.3), payer == 2],
        [late(5, 12), on_time, late(10, 30), on_time, late(10, 25), on_time], late(20, 60))
    paid = ~(((payer == 0) & (u0 < 0.002)) | ((payer == 3) & (u0 < 0.45)))
    partial = (payer == 2) & (u2 < 0.45)
    pay_day = np.maximum(due_day + offset, inv_day)
    amount = np.where(partial, np.maximum(1, np.rint(inv_amount * rng.uniform(0.5, 0.95, m_inv))), inv_amount)
    split = ~partial & (x < 0.04) & (inv_amount >= 100)
    over = ~partial & (x >= 0.04) & (x < 0.045)
    first = np.where(split, np.rint(inv_amount * rng.uniform(0.3, 0.7, m_inv)), amount).astype(np.int64)
    first = np.where(over, first + np.maximum(1, np.rint(inv_amount * rng.uniform(0.001, 0.02, m_inv))), first)
    second_day = pay_day + rng.integers(15, 61, m_inv)
    p_inv = np.concatenate([np.flatnonzero(paid), np.flatnonzero(paid & split)])
    p_day = np.concatenate([pay_day[paid], second_day[paid & split]])
    p_amt = np.concatenate([first[paid], (inv_amount - first)[paid & split]])
    keep = p_day <= w.end_day  # not received yet at extract time
    p_inv, p_day, p_amt = p_inv[keep], p_day[keep], p_amt[keep]
    order = np.lexsort((p_inv, p_day))
    p_inv, p_day, p_amt = p_inv[order], p_day[order], p_amt[order]
    k_pay = len(p_inv)
    foreign = inv_cur[p_inv] > 0
    method = np.where(foreign, 0, np.where(rng.random(k_pay) < 0.85, cust.method[inv_ci[p_inv]],
                                           rng.integers(0, 3, k_pay)))
    pay_upd = np.minimum((p_day + rng.integers(0, 4, k_pay)) * 86400 + rng.integers(8 * 3600, 20 * 3600, k_pay),
                         w.extract_s - rng.integers(0, 5 * 3600, k_pay))
    pay_no = ctr.payment + 1 + np.arange(k_pay)
    ctr.payment += k_pay
    p_take = pa.array(p_inv)
    payments = {
        "payment_id": _ids("PAY", pay_no, 9), "invoice_id": inv_ids.take(p_take),
        "customer_id": invoices["customer_id"].take(p_take), "payment_date": _dates(p_day),
        "currency": _coded(CURRENCIES, inv_cur[p_inv]), "amount": _decimal(p_amt, 2),
        "method": _coded(METHODS, method), "updated_at": _timestamps(pay_upd),
    }
    if orphans and k_pay:  # a few receipts that name no known invoice (unapplied payments)
        k = min(orphans, k_pay)
        payments["invoice_id"] = pa.concat_arrays([_ids("INV-UNKNOWN-", np.arange(1, k + 1), 5),
                                                   payments["invoice_id"][k:]])

    surveys = _surveys(cust, members, w, rng, ctr)
    return {"orders": pa.table(orders), "invoices": pa.table(invoices), "payments": pa.table(payments),
            "survey_responses": surveys}


COMMENTS = None


def _surveys(cust: Customers, members: np.ndarray, w: Window, rng, ctr: Counters):
    """Quarterly waves (middle month of the quarter, days 5-25); 40% of accounts answer, 1-3 contacts."""
    global COMMENTS
    pa, _ = _pa()
    demo = _demo_module()
    if COMMENTS is None:
        COMMENTS = (np.array(demo.COMMENTS_GOOD, dtype=object), np.array(demo.COMMENTS_MID, dtype=object),
                    np.array(demo.COMMENTS_BAD, dtype=object), np.array(demo.COMMENTS_MULTILINE, dtype=object))
    rows_ci, rows_lo, rows_wave = [], [], []
    for m in range(w.first_m, w.last_m + 1):
        if m % 3 != 1:  # Feb, May, Aug, Nov
            continue
        lo = _month_first_day(m) + 4
        eligible = members[(cust.signed_on[members] <= lo) & (cust.churn_day[members] >= lo)]
        take = eligible[rng.random(len(eligible)) < 0.4]
        k = rng.choice([1, 2, 3], size=len(take), p=[0.6, 0.3, 0.1])
        ci = np.repeat(take, k)
        rows_ci.append(ci)
        rows_lo.append(np.full(len(ci), lo))
        rows_wave.append(np.full(len(ci), f"{m // 12}Q{(m % 12) // 3 + 1}", dtype=object))
    ci = np.concatenate(rows_ci)
    lo = np.concatenate(rows_lo)
    wave = np.concatenate(rows_wave)
    n = len(ci)
    submitted = (lo + rng.integers(0, 21, n)) * 86400 + rng.integers(8 * 3600, 21 * 3600, n)
    health = cust.health[ci]
    base = 3.7 + 0.75 * health + rng.normal(0, 0.6, n)
    nps = np.clip(np.rint(7 + 1.8 * health + rng.normal(0, 1.5, n)), 0, 10).astype(np.int16)
    sat = np.clip(np.rint(base), 1, 5).astype(np.int16)
    subs = [np.clip(np.rint(base + rng.normal(0, 0.6, n)), 1, 5).astype(np.int16) for _ in range(4)]
    good, mid, bad, multi = COMMENTS
    comment = np.select([rng.random(n) < 0.1, base >= 4, base >= 3],
                        [multi[rng.integers(0, len(multi), n)], good[rng.integers(0, len(good), n)],
                         mid[rng.integers(0, len(mid), n)]], bad[rng.integers(0, len(bad), n)])
    demo = _demo_module()
    names = np.asarray(demo.SURNAMES, dtype=object)[rng.integers(0, len(demo.SURNAMES), n)] \
        + np.asarray(demo.GIVEN, dtype=object)[rng.integers(0, len(demo.GIVEN), n)]
    resp_no = ctr.response + 1 + np.arange(n)
    ctr.response += n
    phones = pa.compute.binary_join_element_wise(
        "138", pa.compute.utf8_lpad(pa.compute.cast(pa.array(rng.integers(0, 100_000_000, n)), pa.string()),
                                    width=8, padding="0"), "")
    emails = pa.compute.binary_join_element_wise("user", pa.compute.cast(pa.array(resp_no), pa.string()),
                                                 "@example.com", "")
    upd = submitted + rng.integers(60, 3 * 86400, n)

    def opt(values, p_missing):
        return pa.array(values, mask=rng.random(n) < p_missing)

    return pa.table({
        "response_id": _ids("R", resp_no, 9), "customer_id": cust.cid(ci), "survey_id": _strings(wave),
        "submitted_at": _timestamps(submitted), "nps_score": opt(nps, 0.05), "satisfaction": opt(sat, 0.05),
        "product_quality": opt(subs[0], 0.03), "delivery": opt(subs[1], 0.03),
        "after_sales_service": opt(subs[2], 0.03), "responsiveness": opt(subs[3], 0.03),
        "comment": _strings(comment, rng.random(n) < 0.35), "respondent_name": _strings(names, rng.random(n) < 0.9),
        "respondent_phone": pa.compute.if_else(pa.array(rng.random(n) < 0.8), phones, pa.nulls(n, pa.string())),
        "respondent_email": pa.compute.if_else(pa.array(rng.random(n) < 0.7), emails, pa.nulls(n, pa.string())),
        "updated_at": _timestamps(upd),
    })


def _overrides(cust: Customers, w: Window, seed: int):
    """A few approved manual tier decisions in the last months."""
    pa, _ = _pa()
    rng = np.random.default_rng([seed, 3])
    k = max(3, cust.n // 2000)
    idx = np.sort(rng.choice(np.flatnonzero(cust.signed_on < w.end_day - 400), size=k, replace=False))
    months = w.last_m - rng.integers(0, 4, k)
    return pa.table({
        "customer_id": cust.cid(idx),
        "eval_month": _strings(np.array([month_text(m) for m in months], dtype=object)),
        "tier": _strings(_choice(rng, ["A", "B", "C"], [2, 2, 1], k)),
        "reason": _strings(_choice(rng, ["战略客户，总部决定保级", "集团框架协议续签", "回款风险，降级观察"], [1, 1, 1], k)),
        "approved_by": _strings(_choice(rng, ["林志远", "销售总监 王敏", "财务总监 李强"], [1, 1, 1], k)),
        "updated_at": _timestamps(np.array([(_month_first_day(m + 1) - 3) * 86400 + 10 * 3600 for m in months])),
    })


def generate(inbox: Path, scale: str, fmt: str = "parquet", seed: int = SEED, log=print) -> dict:
    """Write the inbox for `scale`; returns rows per feed. Deterministic: same arguments, same data."""
    n_cust, n_orders = SCALES[scale]
    ext = "parquet" if fmt == "parquet" else "csv"
    w = _window()
    cust = Customers(n_cust, w, seed)
    rates, fx_table = _fx_table(w, seed)
    counts = {feed: 0 for feed in FEED_COLUMNS}
    counts["customers"] = _write(cust.table(), inbox / "customers" / f"part-0001.{ext}", fmt)
    counts["fx_rates"] = _write(fx_table, inbox / "fx_rates" / f"part-0001.{ext}", fmt)
    counts["tier_overrides"] = _write(_overrides(cust, w, seed), inbox / "tier_overrides" / f"part-0001.{ext}", fmt)
    rng = np.random.default_rng([seed, 4])
    per_customer = rng.multinomial(n_orders, cust.expected / cust.expected.sum())
    # blocks of customers of about CHUNK_ORDERS orders each: one file per feed and block
    cum = np.cumsum(per_customer)
    cuts = np.searchsorted(cum, np.arange(CHUNK_ORDERS, n_orders, CHUNK_ORDERS), side="right")
    blocks = np.split(np.arange(n_cust), cuts)
    ctr = Counters()
    for b, members in enumerate(blocks, 1):
        started = time.monotonic()
        tables = _block(cust, members, per_customer, w, rates, seed, b, ctr,
                        orphans=max(2, n_orders // 10_000) if b == 1 else 0)
        for feed, table in tables.items():
            counts[feed] += _write(table, inbox / feed / f"part-{b:04d}.{ext}", fmt)
        log(f"  block {b}/{len(blocks)}: {tables['orders'].num_rows:,} orders ({time.monotonic() - started:.1f} s)")
    return counts


# ---------------------------------------------------------------------------------------------
# sources: the files of a feed, as the pipeline picks them
# ---------------------------------------------------------------------------------------------

def feed_files(inbox: Path, feed: str) -> list[Path]:
    """Files the pipeline would take, in byte order of their names (= the order they are taken)."""
    folder = Path(inbox) / feed
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".part"))
                   and p.name.endswith((".csv", ".csv.gz", ".parquet"))), key=lambda p: p.name.encode())


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def floor_source(inbox: Path, feed: str) -> str:
    """A relation over a feed's files, with _file (the file's position in the byte order of the
    names, i.e. the order the pipeline takes them), _line, and _k: the duplicate rule's order as
    one number (updated_at in epoch microseconds, then _file, then _line, as bit fields; fx_rates
    has no updated_at). An empty typed relation if the feed has no file."""
    parts = []
    stamp = "" if feed == "fx_rates" else "cast(epoch_us(cast(updated_at as timestamptz)) as hugeint) * 1099511627776 + "
    for position, path in enumerate(feed_files(inbox, feed), 1):
        if path.name.endswith(".parquet"):
            scan = f"select *, file_row_number as _line from read_parquet({_sql_str(path)}, file_row_number = true)"
        else:
            scan = (f"select *, row_number() over () as _line "
                    f"from read_csv({_sql_str(path)}, all_varchar = true, header = true)")
        parts.append(f"select *, {position} as _file, {stamp}{position} * 4294967296 + _line as _k from ({scan})")
    if not parts:
        cols = ", ".join(f"null::varchar as {c}" for c in FEED_COLUMNS[feed])
        return f"(select {cols}, null::integer as _file, null::bigint as _line, null::hugeint as _k where false)"
    return "(" + " union all by name ".join(f"({p})" for p in parts) + ")"


def floor_sql(inbox: Path, through: str, months: str = "last") -> str:
    sql = FLOOR_SQL.read_text(encoding="utf-8")
    values = {feed: floor_source(inbox, feed) for feed in FEED_COLUMNS}
    values.update(through=through, grace=str(GRACE_MONTHS), rc=REPORTING_CURRENCY, months=months)
    for key, value in values.items():
        sql = sql.replace("{" + key + "}", value)
    return sql


def floor_tier_table(inbox: Path, through: str, months: str = "last"):
    """The floor: one DuckDB query from the inbox files to the tier table (a pandas DataFrame)."""
    con = floor_connection()
    try:
        return con.execute(floor_sql(inbox, through, months)).df()
    finally:
        con.close()


# the peak-RSS budget (8 GiB); the floor gets all of it (the pipeline's default is 5GB, as
# DuckDB holds up to 3 GB beyond its limit in the dbt build)
FLOOR_MEMORY_LIMIT = "8GB"


def floor_connection():
    """An in-memory DuckDB whose session time zone is the business one (the floor relies on it)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"set TimeZone = {_sql_str(BUSINESS_TZ)}")
    con.execute(f"set memory_limit = {_sql_str(os.environ.get('BENCHMARK_FLOOR_MEMORY_LIMIT', FLOOR_MEMORY_LIMIT))}")
    # the result is compared sorted; without the order DuckDB's operators need less memory
    con.execute("set preserve_insertion_order = false")
    return con


# ---------------------------------------------------------------------------------------------
# pandas: what a user might write instead (plain pandas + numpy, one month at a time)
# ---------------------------------------------------------------------------------------------

PD_COLUMNS = {  # the columns the tier table needs (a user reads only those)
    "customers": ["customer_id", "scope", "signed_on", "updated_at"],
    "orders": ["order_id", "customer_id", "order_date", "status", "currency", "net_amount", "updated_at"],
    "invoices": ["invoice_id", "customer_id", "invoice_date", "due_date", "currency", "amount", "updated_at"],
    "payments": ["payment_id", "invoice_id", "currency", "amount", "payment_date", "updated_at"],
    "survey_responses": ["response_id", "customer_id", "submitted_at", "nps_score", "satisfaction", "updated_at"],
    "fx_rates": ["currency", "month", "rate_to_reporting"],
    "tier_overrides": ["customer_id", "eval_month", "tier", "reason", "approved_by", "updated_at"],
}


def _pd_read(inbox: Path, feed: str):
    import pandas as pd

    cols = PD_COLUMNS[feed]
    frames = []
    for path in feed_files(inbox, feed):
        if path.name.endswith(".parquet"):
            df = pd.read_parquet(path, columns=cols, dtype_backend="pyarrow")
        else:
            df = pd.read_csv(path, usecols=cols, dtype=str, keep_default_na=False, na_values=[""],
                             encoding="utf-8-sig")
        df["_file"] = path.name
        df["_line"] = np.arange(len(df))
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=str) for c in cols + ["_file"]} | {"_line": []})
    return pd.concat(frames, ignore_index=True)


def _pd_text(s):
    return s.astype("string").str.strip()


def _pd_instant(s):
    """ISO 8601 text -> UTC instant; without an offset it is business time."""
    import pandas as pd

    s = _pd_text(s)
    has_offset = s.str.contains(r"(?:Z|[+-]\d\d(?::?\d\d)?)$", regex=True).fillna(False).astype(bool)
    out = pd.to_datetime(s.where(has_offset), format="ISO8601", utc=True)
    if (~has_offset & s.notna()).any():
        local = pd.to_datetime(s.where(~has_offset), format="ISO8601").dt.tz_localize(BUSINESS_TZ)
        out = out.where(has_offset, local.dt.tz_convert("UTC"))
    return out


def _pd_latest(df, key: list[str]):
    """sources.md: the latest updated_at wins; ties to the later file, then the later line."""
    df = df.assign(_ts=_pd_instant(df["updated_at"]))
    for k in key:
        df[k] = _pd_text(df[k])
    df = df.sort_values(key + ["_ts", "_file", "_line"], kind="stable")
    return df.drop_duplicates(key, keep="last")


def _pd_month(s):
    import pandas as pd

    d = pd.to_datetime(s.astype("string"), format="%Y-%m-%d")
    return (d.dt.year * 12 + d.dt.month - 1).to_numpy(np.int64)


def _pd_units(s, decimals: int):
    """Amount text/decimal -> exact integer units of 10^-decimals (amounts have at most that many)."""
    return np.rint(s.astype("float64").to_numpy() * 10 ** decimals).astype(np.int64)


def _round_half_away(x: np.ndarray, digits: int) -> np.ndarray:
    scale = 10.0 ** digits
    return np.sign(x) * np.floor(np.abs(x) * scale + 0.5 + 1e-9) / scale


def pandas_tier_table(inbox: Path, through: str, months: str = "last"):
    import pandas as pd

    inbox = Path(inbox)
    through_m = month_index(through)
    rc = REPORTING_CURRENCY

    # customer master (latest version), in byte order of customer_id (the ranking's tie-break)
    cust = _pd_latest(_pd_read(inbox, "customers"), ["customer_id"])
    cust = cust.assign(_key=cust["customer_id"].map(lambda s: s.encode("utf-8")))
    cust = cust.sort_values("_key").reset_index(drop=True)
    cust_idx = pd.Series(np.arange(len(cust)), index=cust["customer_id"].to_numpy())
    signed_m = _pd_month(cust["signed_on"])

    fx = _pd_read(inbox, "fx_rates")
    fx = fx.assign(currency=_pd_text(fx["currency"]), month=_pd_text(fx["month"]))
    fx = fx.sort_values(["_file", "_line"]).drop_duplicates(["currency", "month"], keep="last")
    fx = pd.DataFrame({"currency": fx["currency"].to_numpy(),
                       "m": [month_index(m) for m in fx["month"]],
                       "rate_u": _pd_units(fx["rate_to_reporting"], 4)})

    def convert(df, month_col):
        """Join the month's rate (1e-4 units); drop rows held back for a missing rate."""
        df = df.merge(fx, how="left", left_on=["currency", month_col], right_on=["currency", "m"],
                      suffixes=("", "_fx"))
        df.loc[df["currency"] == rc, "rate_u"] = 10_000
        return df[df["rate_u"].notna()].assign(rate_u=lambda d: d["rate_u"].astype(np.int64))

    # orders: latest version, completed, converted to micro-units of the reporting currency
    orders = _pd_latest(_pd_read(inbox, "orders"), ["order_id"])
    orders = orders.assign(customer_id=_pd_text(orders["customer_id"]), status=_pd_text(orders["status"]),
                           currency=_pd_text(orders["currency"]).fillna("CNY").replace("", "CNY"),
                           om=_pd_month(orders["order_date"]))
    orders = orders[orders["status"] == "completed"]
    orders = convert(orders, "om")
    orders["net_u"] = _pd_units(orders["net_amount"], 2) * orders["rate_u"].to_numpy()
    first_m = int(orders["om"].min())
    months_n = through_m - first_m + 1
    n = len(cust)

    def matrix(ci, mi, values):
        """customer x month sums (events before first_m land in the first column)."""
        out = np.zeros((n, months_n), dtype=np.int64)
        ok = (ci >= 0) & (mi <= through_m)
        np.add.at(out, (ci[ok], np.maximum(mi[ok], first_m) - first_m), values[ok])
        return out

    def rolling12(monthly):
        cs = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(monthly, axis=1)], axis=1)
        idx = np.arange(months_n)
        return cs[:, idx + 1] - cs[:, np.maximum(0, idx - 11)], cs[:, np.maximum(0, idx - 11)] - cs[:, np.maximum(0, idx - 23)]

    o_ci = orders["customer_id"].map(cust_idx).fillna(-1).astype(np.int64).to_numpy()
    o_m = orders["om"].to_numpy()
    rev_m = matrix(o_ci, o_m, orders["net_u"].to_numpy())
    active = matrix(o_ci, o_m, np.ones(len(o_ci), dtype=np.int64)) > 0
    rev12, prev12 = rolling12(rev_m)
    act12, _ = rolling12(active.astype(np.int64))
    first_order = orders.groupby("customer_id")["om"].min()
    first_order_m = cust["customer_id"].map(first_order).fillna(10 ** 9).astype(np.int64).to_numpy()

    # receivables: invoices due in W(M); payments up to end(M), capped per invoice
    inv = _pd_latest(_pd_read(inbox, "invoices"), ["invoice_id"])
    inv = inv.assign(customer_id=_pd_text(inv["customer_id"]),
                     currency=_pd_text(inv["currency"]).fillna("CNY").replace("", "CNY"),
                     im=_pd_month(inv["invoice_date"]), dm=_pd_month(inv["due_date"]),
                     amount_c=_pd_units(inv["amount"], 2))
    inv = convert(inv, "im")
    pay = _pd_latest(_pd_read(inbox, "payments"), ["payment_id"])
    pay = pay.assign(invoice_id=_pd_text(pay["invoice_id"]), pcur=_pd_text(pay["currency"]).replace("", None),
                     pm=_pd_month(pay["payment_date"]), paid_c=_pd_units(pay["amount"], 2))
    pay = pay[["invoice_id", "pcur", "pm", "paid_c"]].merge(inv[["invoice_id", "customer_id", "currency", "dm", "amount_c", "rate_u"]], on="invoice_id")
    pay = pay[pay["pcur"].isna() | (pay["pcur"] == pay["currency"])]
    steps = pay.groupby(["invoice_id", "pm"], as_index=False).agg(
        paid_c=("paid_c", "sum"), customer_id=("customer_id", "first"), dm=("dm", "first"),
        amount_c=("amount_c", "first"), rate_u=("rate_u", "first"))
    steps = steps.sort_values(["invoice_id", "pm"])
    steps["capped"] = np.minimum(steps.groupby("invoice_id")["paid_c"].cumsum(), steps["amount_c"])
    steps["step"] = (steps["capped"] - steps.groupby("invoice_id")["capped"].shift(1).fillna(0).astype(np.int64)) \
        * steps["rate_u"]
    steps["em"] = np.maximum(steps["pm"], steps["dm"])
    steps = steps[steps["em"] <= steps["dm"] + 11]
    i_ci = inv["customer_id"].map(cust_idx).fillna(-1).astype(np.int64).to_numpy()
    billed = inv["amount_c"].to_numpy() * inv["rate_u"].to_numpy()
    billed12 = np.cumsum(matrix(i_ci, inv["dm"].to_numpy(), billed)
                         - matrix(i_ci, inv["dm"].to_numpy() + 12, billed), axis=1)
    s_ci = steps["customer_id"].map(cust_idx).fillna(-1).astype(np.int64).to_numpy()
    step = steps["step"].to_numpy(np.int64)
    coll12 = np.cumsum(matrix(s_ci, steps["em"].to_numpy(), step)
                       - matrix(s_ci, steps["dm"].to_numpy() + 12, step), axis=1)

    # surveys (for NPS and loyalty)
    sv = _pd_latest(_pd_read(inbox, "survey_responses"), ["response_id"])
    local = _pd_instant(sv["submitted_at"]).dt.tz_convert(BUSINESS_TZ)
    sv_m = (local.dt.year * 12 + local.dt.month - 1).to_numpy(np.int64)
    sv_ci = _pd_text(sv["customer_id"]).map(cust_idx).fillna(-1).astype(np.int64).to_numpy()
    nps = pd.to_numeric(sv["nps_score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    sat = pd.to_numeric(sv["satisfaction"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    def survey12(values):
        return rolling12(matrix(sv_ci, sv_m, values.astype(np.int64)))[0]

    scored12 = survey12(~np.isnan(nps))
    prom12 = survey12(nps >= 9)
    det12 = survey12(nps <= 6)
    satn12 = survey12(~np.isnan(sat))
    sats12 = survey12(np.nan_to_num(sat))

    # overrides (approved ones)
    ov = _pd_read(inbox, "tier_overrides")
    ovr = np.full((n, months_n), -1, dtype=np.int8)
    if len(ov):
        ok = _pd_text(ov["approved_by"]).fillna("").ne("") & _pd_text(ov["reason"]).fillna("").ne("") \
            & _pd_text(ov["tier"]).isin(["A", "B", "C"])
        ov = _pd_latest(ov[ok], ["customer_id", "eval_month"])
        ov_ci = ov["customer_id"].map(cust_idx).fillna(-1).astype(np.int64).to_numpy()
        ov_m = np.array([month_index(m) for m in ov["eval_month"]], dtype=np.int64) - first_m
        keep = (ov_ci >= 0) & (ov_m >= 0) & (ov_m < months_n)
        ovr[ov_ci[keep], ov_m[keep]] = _pd_text(ov["tier"]).map({"A": 0, "B": 1, "C": 2}).to_numpy()[keep]

    # evaluated customer-months: signed on or before end(M), from the first global month
    start = np.maximum(signed_m, first_m) - first_m
    evaluated = np.arange(months_n)[None, :] >= start[:, None]

    # V = a (0.7 b + 0.3 d) e, value_score in exact cents
    a = cust["scope"].map({"global": 1.2, "national": 1.1}).fillna(1.0).to_numpy()[:, None]
    e = np.select([billed12 == 0, coll12 * 100 >= billed12 * 95, coll12 * 100 >= billed12 * 85,
                   coll12 * 100 >= billed12 * 70], [1.0, 1.0, 0.95, 0.85], 0.70)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(prev12 == 0, 1.0, np.clip(rev12 / np.where(prev12 == 0, 1, prev12), 0.5, 1.5))
    factor = np.where((prev12 > 0) & (2 * rev12 <= prev12), 0.5,
                      np.where((prev12 > 0) & (2 * rev12 >= 3 * prev12), 1.5, factor))
    v_cents = a * (0.7 + 0.3 * factor) * e * (rev12 / 10_000)  # micro-units -> cents
    cents = np.floor(v_cents + 0.5)
    near = np.abs(v_cents - np.floor(v_cents) - 0.5) < 1e-6  # a half cent: decide exactly
    for i, j in zip(*np.nonzero(near & evaluated)):
        cents[i, j] = _exact_value_cents(int(rev12[i, j]), int(prev12[i, j]), cust["scope"].iat[i],
                                         int(coll12[i, j]), int(billed12[i, j]))
    cents = np.where(evaluated, cents, 0).astype(np.int64)

    # raw tiers month by month; then the tiers with the grace period, month by month
    rank = np.zeros((n, months_n), dtype=np.int64)
    share = np.full((n, months_n), np.nan)
    raw = np.full((n, months_n), 2, dtype=np.int8)
    for j in range(months_n):
        pos = np.flatnonzero(evaluated[:, j] & (cents[:, j] > 0))
        order = pos[np.argsort(-cents[pos, j], kind="stable")]  # ties: customer_id order (rows are sorted)
        values = cents[order, j]
        before = np.cumsum(values) - values
        total = values.sum()
        rank[order, j] = np.arange(1, len(order) + 1)
        share[order, j] = before / total if total else np.nan
        raw[order, j] = np.select([before * 100 < total * 80, before * 100 < total * 95], [0, 1], 2)
    tier = np.full((n, months_n), -1, dtype=np.int8)
    change = np.full((n, months_n), "", dtype=object)
    below = np.zeros(n, dtype=np.int64)
    best = np.full(n, 3, dtype=np.int8)
    for j in range(months_n):
        ev, r, o = evaluated[:, j], raw[:, j], ovr[:, j]
        prev = tier[:, j - 1] if j else np.full(n, -1, dtype=np.int8)
        first = ev & (prev < 0)
        is_ovr = ev & ~first & (o >= 0)
        up = ev & ~first & ~is_ovr & (r < prev)
        same = ev & ~first & ~is_ovr & (r == prev)
        down = ev & ~first & ~is_ovr & (r > prev)
        demote = down & (below + 1 > GRACE_MONTHS)
        held = down & ~demote
        run_best = np.minimum(best, r)
        t = np.where(first, np.where(o >= 0, o, r), prev)
        t = np.where(is_ovr, o, t)
        t = np.where(up, r, t)
        t = np.where(demote, run_best, t)
        tier[:, j] = np.where(ev, t, -1)
        change[:, j] = np.select([first & (o >= 0), first, is_ovr, up, same, demote, held],
                                 ["override", "new", "override", "promoted", "unchanged", "demoted", "held"], "")
        below = np.where(held, below + 1, 0)
        best = np.where(held, run_best, 3)

    # the table
    letters = np.array(["A", "B", "C"], dtype=object)
    cols = range(months_n) if months == "all" else [months_n - 1]
    out = []
    for j in cols:
        rows = np.flatnonzero(evaluated[:, j])
        m = first_m + j
        tenure = np.where(first_order_m[rows] <= m, m - first_order_m[rows] + 1, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            nps12 = 100.0 * (prom12[rows, j] - det12[rows, j]) / scored12[rows, j]
            csat12 = sats12[rows, j] / satn12[rows, j]
            coll_rate = coll12[rows, j] / billed12[rows, j]
        satisfaction = np.where(scored12[rows, j] > 0, (nps12 + 100) / 200,
                                np.where(satn12[rows, j] > 0, (csat12 - 1) / 4, 0.5))
        loyalty = 100 * (0.4 * act12[rows, j] / 12 + 0.2 * np.minimum(tenure, 36) / 36 + 0.4 * satisfaction)
        prev_t = tier[rows, j - 1] if j else np.full(len(rows), -1)
        out.append(pd.DataFrame({
            "customer_id": cust["customer_id"].to_numpy()[rows],
            "eval_month": month_text(m),
            "value_score": [Decimal(int(c)).scaleb(-2) for c in cents[rows, j]],
            "value_rank": pd.Series(rank[rows, j], dtype="Int64").mask(rank[rows, j] == 0).to_numpy(),
            "share_before": np.round(share[rows, j] + 1e-12, 4),
            "raw_tier": letters[raw[rows, j]],
            "tier": letters[tier[rows, j]],
            "previous_tier": np.where(prev_t >= 0, letters[np.maximum(prev_t, 0)], None),
            "tier_change": change[rows, j],
            "collection_rate_12m": np.where(billed12[rows, j] > 0, np.round(coll_rate + 1e-12, 4), np.nan),
            "nps_12m": np.where(scored12[rows, j] > 0, _round_half_away(nps12, 1), np.nan),
            "loyalty_score": _round_half_away(loyalty, 1),
        }))
    return pd.concat(out, ignore_index=True)


def _exact_value_cents(rev_u: int, prev_u: int, scope: str, coll: int, billed: int) -> int:
    """value_score in cents with integer arithmetic (for V within a hair of a half cent)."""
    a10 = {"global": 12, "national": 11}.get(scope, 10)
    if billed == 0 or coll * 100 >= billed * 95:
        e100 = 100
    elif coll * 100 >= billed * 85:
        e100 = 95
    elif coll * 100 >= billed * 70:
        e100 = 85
    else:
        e100 = 70
    if prev_u == 0:
        p, q = 1, 1
    elif 2 * rev_u <= prev_u:
        p, q = 1, 2
    elif 2 * rev_u >= 3 * prev_u:
        p, q = 3, 2
    else:
        p, q = rev_u, prev_u
    num, den = a10 * e100 * rev_u * (7 * q + 3 * p), q * 100_000_000
    return (2 * num + den) // (2 * den)


# ---------------------------------------------------------------------------------------------
# the daily increment: ~1% new and changed rows of every feed, delivered after the full run
# ---------------------------------------------------------------------------------------------

INCREMENT_SQL = """
-- deterministic: every choice is a hash of the row's key
create temp table base_orders as select * from {orders};
create temp table inc_orders as
with changed as (
    -- about a third of the open orders were delivered; a few completed ones came back
    select order_id, customer_id, contract_id, cast(order_date as date) as order_date,
           case when status = 'open' then 'completed' else 'returned' end as status, currency,
           cast(list_amount as decimal(18, 2)) as list_amount, cast(net_amount as decimal(18, 2)) as net_amount,
           cast(cost_amount as decimal(18, 2)) as cost_amount
    from base_orders
    where (status = 'open' and hash(order_id || ':d') % 3 = 0)
       or (status = 'completed' and hash(order_id || ':r') % 1000 = 0)
),
fresh as (
    -- late-entered orders of the last days of the month, for customers that already buy
    select 'SN' || lpad(cast(row_number() over (order by order_id) as varchar), 9, '0') as order_id,
           customer_id, contract_id,
           cast('{end_day}' as date) - cast(hash(order_id || ':day') % 10 as integer) as order_date,
           case when hash(order_id || ':st') % 10 = 0 then 'open' else 'completed' end as status,
           'CNY' as currency,
           cast(list_amount as decimal(18, 2)) as list_amount, cast(net_amount as decimal(18, 2)) as net_amount,
           cast(cost_amount as decimal(18, 2)) as cost_amount
    from base_orders
    where currency = 'CNY' and hash(order_id || ':new') % 200 = 0 and customer_id like 'C%'
)
select *, strftime(timestamp '{stamp}' + to_seconds(cast(hash(order_id || ':t') % 36000 as bigint)),
                   '%Y-%m-%dT%H:%M:%S') || '+08:00' as updated_at
from (select * from changed union all select * from fresh);

create temp table inc_invoices as
select 'INN' || lpad(cast(row_number() over (order by order_id) as varchar), 9, '0') as invoice_id,
       customer_id, order_id, invoice_date, invoice_date + 30 as due_date, currency,
       net_amount as amount,
       strftime(timestamp '{stamp}' + to_seconds(cast(hash(order_id || ':it') % 36000 as bigint)),
                '%Y-%m-%dT%H:%M:%S') || '+08:00' as updated_at
from (
    select *, least(order_date + cast(hash(order_id || ':inv') % 3 as integer), cast('{end_day}' as date))
              as invoice_date
    from inc_orders where status = 'completed'
);

create temp table inc_payments as
with base_invoices as (select * from {invoices}),
base_payments as (select * from {payments}),
unpaid as (
    -- receipts entered late for invoices that were due and still unpaid, dated in the month
    select i.* from base_invoices as i
    where cast(i.due_date as date) <= cast('{end_day}' as date) and hash(i.invoice_id || ':pay') % 3 = 0
      and not exists (select 1 from base_payments as p where p.invoice_id = i.invoice_id)
),
fresh as (
    select 'PAN' || lpad(cast(row_number() over (order by invoice_id) as varchar), 9, '0') as payment_id,
           invoice_id, customer_id,
           greatest(cast(invoice_date as date),
                    cast('{end_day}' as date) - cast(hash(invoice_id || ':pd') % 20 as integer)) as payment_date,
           currency, cast(amount as decimal(18, 2)) as amount, 'bank_transfer' as method
    from unpaid
),
changed as (
    -- re-keyed receipts: the same payment with a corrected method
    select payment_id, invoice_id, customer_id, cast(payment_date as date) as payment_date, currency,
           cast(amount as decimal(18, 2)) as amount, 'bank_transfer' as method
    from base_payments where hash(payment_id || ':chg') % 400 = 0
)
select *, strftime(timestamp '{stamp}' + to_seconds(cast(hash(payment_id || ':t') % 36000 as bigint)),
                   '%Y-%m-%dT%H:%M:%S') || '+08:00' as updated_at
from (select * from fresh union all select * from changed);

create temp table inc_customers as
with base as (select * from {customers}),
changed as (
    -- account managers rotate; a few local accounts become national
    select customer_id, customer_name, industry,
           case when scope = 'local' and hash(customer_id || ':sc') % 10 = 0 then 'national' else scope end as scope,
           region, '{new_manager}' as account_manager, cast(signed_on as date) as signed_on
    from base where hash(customer_id || ':chg') % 100 = 0
),
fresh as (
    select 'N' || lpad(cast(row_number() over (order by customer_id) as varchar), 6, '0') as customer_id,
           customer_name || '（新）' as customer_name, industry, scope, region, account_manager,
           cast('{end_day}' as date) - cast(hash(customer_id || ':so') % 20 as integer) as signed_on
    from base where hash(customer_id || ':new') % 1000 = 0
)
select *, strftime(timestamp '{stamp}' + to_seconds(cast(hash(customer_id || ':t') % 36000 as bigint)),
                   '%Y-%m-%dT%H:%M:%S') || '+08:00' as updated_at
from (select * from changed union all select * from fresh);

create temp table inc_survey_responses as
select 'RN' || lpad(cast(row_number() over (order by response_id) as varchar), 9, '0') as response_id,
       customer_id, '{wave}' as survey_id,
       strftime(cast('{month_start}' as timestamp) + to_seconds(cast(hash(response_id || ':s') % (27 * 86400) as bigint)),
                '%Y-%m-%dT%H:%M:%S') || '+08:00' as submitted_at,
       cast(nps_score as smallint) as nps_score, cast(satisfaction as smallint) as satisfaction,
       cast(product_quality as smallint) as product_quality, cast(delivery as smallint) as delivery,
       cast(after_sales_service as smallint) as after_sales_service,
       cast(responsiveness as smallint) as responsiveness, comment,
       respondent_name, respondent_phone, respondent_email,
       strftime(timestamp '{stamp}' + to_seconds(cast(hash(response_id || ':t') % 36000 as bigint)),
                '%Y-%m-%dT%H:%M:%S') || '+08:00' as updated_at
from {survey_responses}
where hash(response_id || ':new') % 100 = 0;
"""


def write_increment(inbox: Path, out: Path, fmt: str) -> dict:
    """~1% new and changed rows of each feed as new files (part-9001.*) under `out`."""
    import duckdb

    w = _window()
    end_day = np.datetime64(int(w.end_day), "D")
    stamp = str((end_day + np.timedelta64(2, "D")).astype("datetime64[s]")).replace("T", " ")  # 2 days after
    sources = {feed: floor_source(inbox, feed) for feed in FEED_COLUMNS}
    sql = INCREMENT_SQL
    for key, value in {**sources, "end_day": str(end_day), "stamp": stamp, "new_manager": "周婷",
                       "month_start": str(np.datetime64(int(_month_first_day(w.last_m)), "D")),
                       "wave": f"{w.last_m // 12}Q{(w.last_m % 12) // 3 + 1}-pulse"}.items():
        sql = sql.replace("{" + key + "}", value)
    con = duckdb.connect()
    counts = {}
    try:
        con.execute(sql)
        ext = "parquet" if fmt == "parquet" else "csv"
        for feed in ("customers", "orders", "invoices", "payments", "survey_responses"):
            target = out / feed / f"part-9001.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            cols = ", ".join(FEED_COLUMNS[feed])
            options = "(format parquet, compression zstd)" if fmt == "parquet" else "(format csv, header true)"
            con.execute(f"copy (select {cols} from inc_{feed}) to {_sql_str(tmp)} {options}")
            os.replace(tmp, target)
            counts[feed] = con.execute(f"select count(*) from inc_{feed}").fetchone()[0]
    finally:
        con.close()
    return counts


# ---------------------------------------------------------------------------------------------
# running things in child processes: wall time, peak RSS (their own, reported back), a memory guard
# ---------------------------------------------------------------------------------------------

@dataclass
class ChildResult:
    seconds: float
    peak_rss_mb: float
    cpu_s: float
    returncode: int
    log: Path
    aborted: str | None = None


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def run_child(args: list[str], log: Path, rss_limit_mb: float, env: dict | None = None,
              cwd: Path = ROOT) -> ChildResult:
    """Run a command in its own session; wall time, peak RSS, CPU time. A guard thread kills it
    (its own process group only) if the tree's RSS passes the limit.

    The peak RSS is what the child reports of itself (our `_floor`, `_pandas` and `_pipeline`
    children write it to PEAK_FILE_ENV), or the tree's largest sample if that is larger, or alone
    when the child died before it could tell. The kernel's figure (wait4's ru_maxrss) also counts
    the benchmark's own peak before the fork, because a forked child starts with a copy of the
    parent's memory accounting (at L, after generating the increment, that read 9 GB for a
    pipeline that peaked at 7.7 GB); it is used only when there is nothing else."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak_file = log.with_suffix(".peak")
    peak_file.unlink(missing_ok=True)
    sampled = [0.0]
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {}), PEAK_FILE_ENV: str(peak_file)}, cwd=cwd)
        aborted: list[str] = []
        done = threading.Event()

        def guard():
            while not done.wait(0.5):
                rss = _tree_rss_kb(proc.pid) / 1024
                sampled[0] = max(sampled[0], rss)
                if rss > rss_limit_mb:
                    aborted.append(f"RSS {rss:,.0f} MB passed the {rss_limit_mb:,.0f} MB limit")
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return

        thread = threading.Thread(target=guard, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        thread.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        peak_mb = max(float(peak_file.read_text()) / 1024, sampled[0])
    except (OSError, ValueError):  # the child died before it could tell (killed, out of memory, an error)
        peak_mb = sampled[0] or usage.ru_maxrss / 1024
    return ChildResult(seconds, peak_mb, usage.ru_utime + usage.ru_stime, proc.returncode, log,
                       aborted[0] if aborted else None)


PEAK_FILE_ENV = "BENCHMARK_PEAK_FILE"  # where a child writes its own peak RSS (KB)


def _report_own_peak(kb: float) -> None:
    path = os.environ.get(PEAK_FILE_ENV)
    if path:
        Path(path).write_text(str(int(kb)), encoding="utf-8")


def _self(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _child_compute(kind: str, inbox: str, through: str, out: str) -> int:
    """`_floor` / `_pandas`: compute the tier table of `through`, write it to `out` (Parquet)."""
    started = time.perf_counter()
    if kind == "floor":
        con = floor_connection()
        con.execute(f"copy ({floor_sql(Path(inbox), through)}) to {_sql_str(out)} (format parquet)")
        con.close()
    else:
        pandas_tier_table(Path(inbox), through).to_parquet(out, index=False)
    print(json.dumps({"compute_s": time.perf_counter() - started}))
    return 0


def _vm_hwm_kb() -> int:
    """This process's peak RSS since the last reset, in kB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_vm_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _child_pipeline(timings_path: str, argv: list[str]) -> int:
    """`_pipeline`: `keyaccounts run ...` through the CLI's own entry point, with each task (and the
    steps inside ingest and publish) timed by wrapping the functions the pipeline calls."""
    started = time.perf_counter()
    import keyaccounts.pipeline as pipeline
    from keyaccounts.ingest import loader, readers

    timings: dict[str, float] = {}
    peaks: dict[str, int] = {}  # peak RSS (kB) per stage
    active: list[str] = []

    def checkpoint() -> None:
        # The kernel's high-water mark since the last reset belongs to every stage running in that
        # interval; resetting it (clear_refs 5) starts the next interval.
        hwm = _vm_hwm_kb()
        peaks["process"] = max(peaks.get("process", 0), hwm)
        for stage in active:
            peaks[stage] = max(peaks.get(stage, 0), hwm)
        _reset_vm_hwm()

    def timed(owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            checkpoint()
            active.append(name)
            try:
                return fn(*args, **kwargs)
            finally:
                checkpoint()
                active.remove(name)
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t

        setattr(owner, attr, wrapper)

    for owner, attr, name in (
        (pipeline, "ingest_task", "ingest"), (pipeline, "transform_task", "dbt_build"),
        # the held-back list was part of check_task until session 8: timed with the checks
        (pipeline, "held_back_task", "checks"),
        (pipeline, "check_task", "checks"), (pipeline, "publish_task", "publish"),
        (pipeline, "export_month", "publish.exports"), (pipeline, "build_report", "publish.report"),
        (pipeline, "refresh_bi_copy", "publish.bi_copy"), (pipeline, "stage_bi_copy", "publish.bi_copy"),
        (loader, "_sha256", "ingest.checksum"), (readers, "read_file", "ingest.read_file"),
        (loader, "_file_arrow", "ingest.to_arrow"), (loader, "_stage_content", "ingest.contract_checks"),
        (loader, "_commit_file", "ingest.commit"),
    ):
        if hasattr(owner, attr):  # the pipeline's code moves on; time what is there
            timed(owner, attr, name)
    imported = time.perf_counter() - started
    from keyaccounts.cli import main

    code = main(argv)
    timings["process_total_in_python"] = time.perf_counter() - started
    timings["imports"] = imported
    checkpoint()  # the resets hide the whole run's peak from wait4: "process" keeps it
    timings.update({f"peak_rss_mb.{k}": v / 1024 for k, v in peaks.items()})
    _report_own_peak(peaks.get("process", 0))
    Path(timings_path).write_text(json.dumps(timings, indent=1), encoding="utf-8")
    return code


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------

def _table_rows(path_or_warehouse: Path, through: str, from_warehouse: bool = False) -> list[tuple]:
    """The compared columns, normalised: value_score as text with 2 decimals, ranks as int."""
    import duckdb

    cols = ", ".join(COMPARE_COLUMNS)
    if from_warehouse:
        con = duckdb.connect(str(path_or_warehouse), read_only=True)
        query = f"select {cols} from marts.customer_tier_monthly where eval_month = {_sql_str(through)}"
    else:
        con = duckdb.connect()
        query = f"select {cols} from read_parquet({_sql_str(path_or_warehouse)})"
    try:
        rows = con.execute(f"select * from ({query}) order by customer_id").fetchall()
    finally:
        con.close()
    out = []
    for customer, value, rank, raw, tier, prev, change in rows:
        value = f"{Decimal(str(value)).quantize(Decimal('0.01'))}"
        rank = None if rank is None or (isinstance(rank, float) and rank != rank) else int(rank)
        out.append((customer, value, rank, raw, tier, prev or None, change))
    return out


def compare(tables: dict[str, list[tuple]], show: int = 10) -> list[str]:
    """Differences between the tables (first `show` rows per pair), empty when they agree."""
    problems = []
    names = list(tables)
    ref_name = names[0]
    ref = {r[0]: r for r in tables[ref_name]}
    for name in names[1:]:
        other = {r[0]: r for r in tables[name]}
        diffs = []
        for key in sorted(set(ref) | set(other)):
            if ref.get(key) != other.get(key):
                diffs.append(f"    {ref_name:>8}: {ref.get(key)}\n    {name:>8}: {other.get(key)}")
        if diffs:
            problems.append(f"  {ref_name} vs {name}: {len(diffs)} of {len(ref)} customers differ "
                            f"({', '.join(COMPARE_COLUMNS)}); first rows:\n" + "\n".join(diffs[:show]))
    return problems


def _dbt_node_timings(warehouse: Path, top: int = 10) -> dict:
    path = warehouse.parent / ".dbt" / warehouse.stem / "target" / "run_results.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    models = [(r["unique_id"].split(".")[-1], r.get("execution_time", 0.0)) for r in results
              if r["unique_id"].startswith(("model.", "seed."))]
    tests = [r.get("execution_time", 0.0) for r in results if r["unique_id"].startswith("test.")]
    models.sort(key=lambda x: -x[1])
    # dbt's threads: models built side by side (the on-run-start hook runs on dbt's main thread)
    return {"threads": len({r.get("thread_id") for r in results if not r["unique_id"].startswith("operation.")}),
            "models_s": round(sum(t for _, t in models), 2), "models": len(models),
            "tests_s": round(sum(tests), 2), "tests": len(tests),
            "top_models": {name: round(t, 2) for name, t in models[:top]}}


def _ingest_stats(warehouse: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {feed: {"files": f, "rows_read": r, "loaded": lo, "updated": u, "quarantined": q}
                for feed, f, r, lo, u, q in con.execute(
                    "select feed, sum(files_taken), sum(rows_read), sum(rows_loaded), sum(rows_updated), "
                    "sum(rows_quarantined) from audit.ingest_runs where run_id = (select max(run_id) from "
                    "audit.ingest_runs) group by feed order by feed").fetchall()}
    finally:
        con.close()


def _link_inbox(target: Path, *sources: Path) -> None:
    """The run's inbox: hard links to the generated files (generated once per scale; the pipeline
    refuses symlinks that lead out of its inbox), copies where hard links are not possible."""
    for source in sources:
        for feed_dir in sorted(p for p in source.iterdir() if p.is_dir()):
            (target / feed_dir.name).mkdir(parents=True, exist_ok=True)
            for f in feed_dir.iterdir():
                link = target / feed_dir.name / f.name
                if not link.exists():
                    try:
                        os.link(f, link)
                    except OSError:
                        shutil.copy2(f, link)


def _stages(timings: dict, total: float) -> dict:
    keys = ("ingest", "dbt_build", "checks", "publish")
    stages = {k: round(timings.get(k, 0.0), 2) for k in keys}
    stages["startup_and_other"] = round(total - sum(timings.get(k, 0.0) for k in keys), 2)
    parts = ("publish.exports", "publish.report", "publish.bi_copy")
    stages["publish.swap_and_record"] = round(timings.get("publish", 0.0) - sum(timings.get(k, 0.0) for k in parts), 2)
    for k in parts:
        stages[k] = round(timings.get(k, 0.0), 2)
    return stages


def _stage_peaks(timings: dict) -> dict:
    """Peak RSS (MB) of the pipeline process while each stage ran (dbt runs in-process)."""
    return {k.split(".", 1)[1]: round(v) for k, v in timings.items() if k.startswith("peak_rss_mb.")}


def machine() -> dict:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    import duckdb

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cores": os.cpu_count(), "memory_gib": round(mem_gib, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "platform": platform.platform(terse=True), "commit": commit,
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}


def code_snapshot(ref: str, workdir: Path) -> tuple[Path, str]:
    """The project's code at a git ref (`git archive`), so that a benchmark measures a commit and not
    whatever is being edited in the working tree; returns (folder, commit)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    target = workdir / f"code-{commit[:12]}"
    if not (target / "src" / "keyaccounts").is_dir():
        tmp = workdir / f"code-{commit[:12]}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        os.replace(tmp, target)
    return target, commit


def benchmark(scale: str, fmt: str, workdir: Path, rss_limit_mb: float, log=print, ref: str | None = None,
              skip_pipeline: bool = False, skip_pandas: bool = False) -> tuple[dict, list[str]]:
    n_cust, n_orders = SCALES[scale]
    through = END_MONTH
    data = workdir / f"data-{scale}-{fmt}"
    stamp = data / "generated.json"
    params = {"scale": scale, "format": fmt, "seed": SEED, "end_month": END_MONTH, "years": YEARS,
              "version": GENERATOR_VERSION}
    if not stamp.exists() or json.loads(stamp.read_text())["params"] != params:
        shutil.rmtree(data, ignore_errors=True)
        log(f"generating {scale}: {n_cust:,} customers, {n_orders:,} orders, {YEARS} years to {END_MONTH} ({fmt})")
        started = time.perf_counter()
        counts = generate(data / "inbox", scale, fmt, SEED, log=log)
        gen_s = time.perf_counter() - started
        stamp.write_text(json.dumps({"params": params, "rows": counts, "seconds": round(gen_s, 1)}, indent=1))
    info = json.loads(stamp.read_text())
    log(f"inbox {data / 'inbox'}: " + ", ".join(f"{k} {v:,}" for k, v in info["rows"].items()))

    run_dir = workdir / f"run-{scale}-{fmt}"
    shutil.rmtree(run_dir, ignore_errors=True)
    inbox, warehouse, results = run_dir / "inbox", run_dir / "warehouse.duckdb", run_dir / "results"
    results.mkdir(parents=True)
    _link_inbox(inbox, data / "inbox")
    figures: dict = {"scale": scale, "customers": n_cust, "orders": n_orders, "format": fmt, "through": through,
                     "rows": info["rows"], "generate_s": info["seconds"], "machine": machine()}
    problems: list[str] = []
    # the pipeline's code: the working tree, or a snapshot of a commit
    code_env, code_dir = {}, ROOT
    if ref:
        code_dir, commit = code_snapshot(ref, workdir)
        code_env = {"PYTHONPATH": str(code_dir / "src"), "KEYACCOUNTS_DBT_PROJECT_DIR": str(code_dir / "dbt_project")}
        figures["code"] = {"ref": ref, "commit": commit}
        log(f"pipeline code: {ref} = {commit[:12]} ({code_dir})")
    else:
        figures["code"] = {"ref": "working tree", "commit": figures["machine"]["commit"]}

    def child(name: str, args: list[str], **kw) -> ChildResult:
        log(f"{name} ...")
        res = run_child(args, results / f"{name}.log", rss_limit_mb, **kw)
        log(f"{name}: {res.seconds:.1f} s, peak RSS {res.peak_rss_mb:,.0f} MB, exit {res.returncode}"
            + (f" ABORTED: {res.aborted}" if res.aborted else ""))
        if res.returncode != 0:
            tail = res.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            errors = [line for line in tail if "Error" in line or "error:" in line]
            figures.setdefault("failures", {})[name] = res.aborted or (errors[-1][:200] if errors else
                                                                        f"exit {res.returncode}")
            problems.append(f"{name} failed (exit {res.returncode}{', ' + res.aborted if res.aborted else ''}); "
                            f"log {res.log}:\n    " + "\n    ".join(tail))
        return res

    floor = child("floor", _self("_floor", str(inbox), through, str(results / "floor.parquet")))
    figures.update(floor_duckdb_s=round(floor.seconds, 2), floor_peak_rss_mb=round(floor.peak_rss_mb),
                   floor_cpu_s=round(floor.cpu_s, 1))
    if skip_pandas:  # at L pandas runs out of memory after minutes (docs/benchmarks.md)
        pandas_res = None
        figures.update(pandas_s=None, pandas_skipped=True)
    else:
        pandas_res = child("pandas", _self("_pandas", str(inbox), through, str(results / "pandas.parquet")))
        figures.update(pandas_s=round(pandas_res.seconds, 2), pandas_peak_rss_mb=round(pandas_res.peak_rss_mb),
                       pandas_cpu_s=round(pandas_res.cpu_s, 1))
    pandas_ok = pandas_res is not None and pandas_res.returncode == 0

    figures["floor_memory_limit"] = os.environ.get("BENCHMARK_FLOOR_MEMORY_LIMIT", FLOOR_MEMORY_LIMIT)
    # what the pipeline's defaults were overridden with (none: its own defaults, README "Configuration")
    figures["pipeline_settings"] = {k: v for k, v in sorted(os.environ.items())
                                    if k.startswith(("KEYACCOUNTS_DUCKDB_", "KEYACCOUNTS_THREADS"))}
    if skip_pipeline:
        figures["ratios"] = {}
        figures["tables_agree"] = None
        if floor.returncode == 0 and pandas_ok:
            compared = compare({"floor": _table_rows(results / "floor.parquet", through),
                                "pandas": _table_rows(results / "pandas.parquet", through)})
            figures["floor_equals_pandas"] = not compared
            problems += compared
        figures["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        return figures, problems
    run_args = ["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--through", through]
    full = child("pipeline", _self("_pipeline", str(results / "pipeline-timings.json"), *run_args),
                 env=code_env, cwd=code_dir)
    timings = json.loads((results / "pipeline-timings.json").read_text()) if full.returncode == 0 else {}
    figures.update(pipeline_s=round(full.seconds, 2), peak_rss_mb=round(full.peak_rss_mb),
                   pipeline_peak_rss_mb=round(full.peak_rss_mb),
                   pipeline_cpu_s=round(full.cpu_s, 1), stages=_stages(timings, full.seconds),
                   stage_peak_rss_mb=_stage_peaks(timings),
                   ingest_detail={k.split(".", 1)[1]: round(v, 2) for k, v in timings.items()
                                  if k.startswith("ingest.")},
                   dbt=_dbt_node_timings(warehouse))
    if full.returncode == 0:
        figures["ingest_rows"] = _ingest_stats(warehouse)
        tables = {"floor": _table_rows(results / "floor.parquet", through) if floor.returncode == 0 else [],
                  "pandas": _table_rows(results / "pandas.parquet", through) if pandas_ok else [],
                  "pipeline": _table_rows(warehouse, through, from_warehouse=True)}
        # a baseline that did not run (skipped, or out of memory) is left out of the comparison
        tables = {k: v for k, v in tables.items() if v or k == "pipeline"}
        figures["tier_rows"] = {k: len(v) for k, v in tables.items()}
        disagreements = compare(tables)
        # a pandas left out on purpose (--skip-pandas) is not a disagreement; one that failed is
        figures["tables_agree"] = not disagreements and (pandas_ok or skip_pandas) and floor.returncode == 0
        figures["tables_compared"] = sorted(tables)
        problems += disagreements

        # the daily increment, then the same run again
        inc_dir = data / "increment"
        if not (inc_dir / "done.json").exists():
            shutil.rmtree(inc_dir, ignore_errors=True)
            counts = write_increment(data / "inbox", inc_dir, fmt)
            (inc_dir / "done.json").write_text(json.dumps(counts))
        figures["increment_rows"] = json.loads((inc_dir / "done.json").read_text())
        _link_inbox(inbox, inc_dir)
        inc = child("pipeline-increment", _self("_pipeline", str(results / "increment-timings.json"), *run_args),
                    env=code_env, cwd=code_dir)
        inc_timings = json.loads((results / "increment-timings.json").read_text()) if inc.returncode == 0 else {}
        figures.update(incremental_s=round(inc.seconds, 2), incremental_peak_rss_mb=round(inc.peak_rss_mb),
                       incremental_cpu_s=round(inc.cpu_s, 1),
                       incremental_stages=_stages(inc_timings, inc.seconds),
                       incremental_stage_peak_rss_mb=_stage_peaks(inc_timings))
        figures["peak_rss_mb"] = round(max(full.peak_rss_mb, inc.peak_rss_mb))
        floor2 = child("floor-after-increment", _self("_floor", str(inbox), through,
                                                      str(results / "floor-increment.parquet")))
        figures["floor_after_increment_s"] = round(floor2.seconds, 2)
        if inc.returncode == 0 and floor2.returncode == 0:
            after = compare({"floor": _table_rows(results / "floor-increment.parquet", through),
                             "pipeline": _table_rows(warehouse, through, from_warehouse=True)})
            figures["tables_agree_after_increment"] = not after
            problems += [p.replace("  floor vs pipeline", "  after the increment: floor vs pipeline") for p in after]
        if inc.returncode == 0:
            # the same run once more, with no new file: it should cost its ingest only (up_to_date)
            again = child("pipeline-rerun", _self("_pipeline", str(results / "rerun-timings.json"), *run_args),
                          env=code_env, cwd=code_dir)
            again_timings = (json.loads((results / "rerun-timings.json").read_text())
                             if again.returncode == 0 else {})
            figures.update(rerun_nothing_new_s=round(again.seconds, 2),
                           rerun_nothing_new_peak_rss_mb=round(again.peak_rss_mb),
                           rerun_nothing_new_stages=_stages(again_timings, again.seconds))
    figures["ratios"] = ratios(figures)
    figures["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return figures, problems


def ratios(f: dict) -> dict:
    out = {}
    if f.get("pipeline_s") and f.get("floor_duckdb_s"):
        out["pipeline_vs_floor"] = round(f["pipeline_s"] / f["floor_duckdb_s"], 2)
    if f.get("pipeline_s") and f.get("pandas_s"):
        out["pandas_vs_pipeline"] = round(f["pandas_s"] / f["pipeline_s"], 2)
    if f.get("pipeline_s") and f.get("incremental_s"):
        out["increment_share"] = round(f["incremental_s"] / f["pipeline_s"], 3)
    return out


def targets(f: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, limit, measured, met) of issue 8 that apply at this scale."""
    r, scale = f.get("ratios", {}), f["scale"]
    rows = []
    t = TARGETS.get(scale)
    if t:
        v = r.get("pipeline_vs_floor")
        rows.append(("pipeline / floor", f"<= {t['pipeline_vs_floor']}x", f"{v}x" if v else "-",
                     None if v is None else v <= t["pipeline_vs_floor"]))
        v = r.get("pandas_vs_pipeline")
        rows.append(("pandas / pipeline", f">= {t['pandas_vs_pipeline']}x", f"{v}x" if v else "-",
                     None if v is None else v >= t["pandas_vs_pipeline"]))
    v = r.get("increment_share")
    rows.append(("1% increment / full run", f"<= {INCREMENT_SHARE_TARGET:.0%}", f"{v:.1%}" if v else "-",
                 None if v is None else v <= INCREMENT_SHARE_TARGET))
    if scale == "L":
        v = f.get("peak_rss_mb")
        rows.append(("pipeline peak RSS", f"<= {PEAK_RSS_TARGET_MB:,} MB", f"{v:,} MB" if v else "-",
                     None if v is None else v <= PEAK_RSS_TARGET_MB))
    return rows


def report(f: dict) -> str:
    lines = [f"benchmark scale {f['scale']}: {f['customers']:,} customers, {f['orders']:,} orders, {YEARS} years "
             f"through {f['through']} ({f['format']}); {f['machine']['cores']} cores, {f['machine']['memory_gib']} GiB, "
             f"load average {f['machine']['load_avg_1m_at_start']} -> {f['machine'].get('load_avg_1m_at_end')}",
             "", f"{'measure':<34}{'seconds':>10}{'CPU s':>10}{'peak RSS MB':>14}"]

    def row(name, s, rss=None, cpu=None):
        lines.append(f"{name:<34}{'-' if s is None else f'{s:,.1f}':>10}{'' if cpu is None else f'{cpu:,.1f}':>10}"
                     f"{'' if rss is None else f'{rss:,.0f}':>14}")

    failed = f.get("failures", {})
    row("floor (one DuckDB query)" + (" FAILED" if "floor" in failed else ""), f.get("floor_duckdb_s"),
        f.get("floor_peak_rss_mb"), f.get("floor_cpu_s"))
    row("pandas" + (" FAILED" if "pandas" in failed else ""), f.get("pandas_s"), f.get("pandas_peak_rss_mb"),
        f.get("pandas_cpu_s"))
    row("pipeline (keyaccounts run)", f.get("pipeline_s"), f.get("pipeline_peak_rss_mb"), f.get("pipeline_cpu_s"))
    for k, v in f.get("stages", {}).items():
        row(("    " if "." in k else "  ") + k.replace("publish.", ""), v, f.get("stage_peak_rss_mb", {}).get(k))
    if f.get("ingest_detail"):
        lines.append("  ingest detail: " + ", ".join(f"{k} {v:.1f}" for k, v in f["ingest_detail"].items()))
    if f.get("dbt"):
        d = f["dbt"]
        lines.append(f"  dbt ({d.get('threads')} at a time): {d['models']} models {d['models_s']:.1f} s (summed), "
                     f"{d['tests']} tests {d['tests_s']:.1f} s; "
                     "slowest: " + ", ".join(f"{k} {v:.1f}" for k, v in list(d["top_models"].items())[:5]))
    row("pipeline, 1% daily increment", f.get("incremental_s"), f.get("incremental_peak_rss_mb"),
        f.get("incremental_cpu_s"))
    for k in ("ingest", "dbt_build", "checks", "publish"):
        if f.get("incremental_stages"):
            row("  " + k, f["incremental_stages"].get(k), f.get("incremental_stage_peak_rss_mb", {}).get(k))
    row("floor after the increment", f.get("floor_after_increment_s"))
    row("pipeline again, nothing new", f.get("rerun_nothing_new_s"), f.get("rerun_nothing_new_peak_rss_mb"))
    agree = f.get("tables_agree")
    compared = f.get("tables_compared") or ("floor", "pandas", "pipeline")
    lines += ["", f"tier tables (latest month: {', '.join(COMPARE_COLUMNS)}): "
              + (" = ".join(n for n in ("floor", "pandas", "pipeline") if n in compared)
                 if agree else "DISAGREE" if agree is False else "not compared")
              + (f", {f['tier_rows']['pipeline']:,} customers" if f.get("tier_rows") else "")
              + ("" if "tables_agree_after_increment" not in f else
                 "; after the increment floor = pipeline" if f["tables_agree_after_increment"]
                 else "; after the increment they DISAGREE"), "",
              f"{'target (issue 8)':<28}{'limit':>14}{'measured':>14}   met"]
    for name, limit, measured, met in targets(f):
        lines.append(f"{name:<28}{limit:>14}{measured:>14}   {'-' if met is None else 'yes' if met else 'NO'}")
    if f["scale"] == "S":
        lines.append("(at S the pipeline's fixed start-up cost dominates: the speed targets apply at M and L)")
    for name, why in failed.items():
        lines.append(f"{name} failed: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_floor", "_pandas"):
        code = _child_compute(argv[0][1:], *argv[1:4])
        _report_own_peak(_vm_hwm_kb())
        return code
    if argv and argv[0] == "_pipeline":
        return _child_pipeline(argv[1], argv[2:])
    p = argparse.ArgumentParser(description="Benchmark the pipeline against a DuckDB floor and pandas.")
    p.add_argument("--scale", choices=list(SCALES), required=True,
                   help="S: 2k customers/20k orders, M: 20k/2M, L: 200k/20M (three years)")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--csv", action="store_true", help="write the inbox as CSV instead of Parquet")
    p.add_argument("--workdir", type=Path, default=ROOT / ".state" / "benchmark",
                   help="generated data (kept and reused per scale) and runs (default .state/benchmark)")
    p.add_argument("--rss-limit-gb", type=float, default=16.0,
                   help="kill a measured process whose memory passes this (default 16)")
    p.add_argument("--ref", default=None,
                   help="run the pipeline of this git commit (git archive into the workdir) instead of the "
                        "working tree, e.g. --ref HEAD")
    p.add_argument("--floor-memory-limit", default=FLOOR_MEMORY_LIMIT,
                   help=f"DuckDB memory_limit of the floor (default {FLOOR_MEMORY_LIMIT}: the peak-RSS target)")
    p.add_argument("--skip-pandas", action="store_true",
                   help="leave pandas out (at L it runs out of memory after several minutes)")
    p.add_argument("--skip-pipeline", action="store_true",
                   help="only the floor and pandas (e.g. at L, where the pipeline does not fit the machine)")
    args = p.parse_args(argv)
    os.environ["BENCHMARK_FLOOR_MEMORY_LIMIT"] = args.floor_memory_limit  # read by the floor's child
    figures, problems = benchmark(args.scale, "csv" if args.csv else "parquet", args.workdir.resolve(),
                                  args.rss_limit_gb * 1024, log=lambda msg: print(msg, file=sys.stderr, flush=True),
                                  ref=args.ref, skip_pipeline=args.skip_pipeline, skip_pandas=args.skip_pandas)
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False), encoding="utf-8")
    if problems:
        print("\nFAILED:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
