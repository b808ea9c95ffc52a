"""Generate a deterministic demo inbox for the key-account pipeline.

Writes one folder per feed of the inbound contract (shared spec `sources.md`):

    <out>/customers/part-0001.csv
    <out>/orders/part-0001.csv         full history as first delivered
    <out>/orders/part-0002.csv         a later increment: open orders now completed,
                                       plus a few identical re-deliveries
    <out>/invoices/part-0001.csv
    <out>/payments/part-0001.csv
    <out>/survey_responses/part-0001.csv
    <out>/fx_rates/part-0001.csv

The data is shaped to exercise the pipeline: a Pareto-like revenue concentration,
growing, shrinking and churning accounts, late, partial, split and missing payments,
a little foreign-currency business, and survey scores that go with payment behaviour.

Same arguments give byte-identical files: every random draw comes from `random.Random`
streams seeded from `seed` (never the clock), iteration is over sorted keys, and the
"extract time" that caps `updated_at` is derived from `end_month`.

Usage:
    python scripts/generate_demo_data.py --out DIR [--customers N] [--years Y]
        [--seed S] [--end-month YYYY-MM]
"""

from __future__ import annotations

import argparse
import calendar
import csv
import math
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

TZ = timezone(timedelta(hours=8))  # business time zone Asia/Shanghai (no DST)

HEADERS: dict[str, list[str]] = {
    "customers": ["customer_id", "customer_name", "industry", "scope", "region",
                  "account_manager", "signed_on", "updated_at"],
    "orders": ["order_id", "customer_id", "contract_id", "order_date", "status", "currency",
               "list_amount", "net_amount", "cost_amount", "updated_at"],
    "invoices": ["invoice_id", "customer_id", "order_id", "invoice_date", "due_date",
                 "currency", "amount", "updated_at"],
    "payments": ["payment_id", "invoice_id", "customer_id", "payment_date", "currency",
                 "amount", "method", "updated_at"],
    "survey_responses": ["response_id", "customer_id", "survey_id", "submitted_at",
                         "nps_score", "satisfaction", "product_quality", "delivery",
                         "after_sales_service", "responsiveness", "comment",
                         "respondent_name", "respondent_phone", "respondent_email",
                         "updated_at"],
    "fx_rates": ["currency", "month", "rate_to_reporting"],
}

# --- vocabulary ---------------------------------------------------------------------

INDUSTRY_WEIGHTS = {
    "manufacturing": 22, "technology": 16, "retail": 13, "logistics": 11, "healthcare": 10,
    "energy": 9, "finance": 9, "government": 5, "education": 5,
}
CN_PREFIXES = [
    "华东", "西部", "蓝海", "中联", "华南", "北方", "东方", "长江", "金桥", "新纪元", "恒信",
    "瑞丰", "鼎盛", "宏达", "天和", "中科", "海纳", "博远", "盛世", "安泰", "汇通", "启明",
    "远航", "星河", "万邦", "华信", "众诚", "明德", "德润", "嘉禾", "永安", "江南", "京华",
    "粤海", "川渝", "齐鲁", "中原", "银河", "九州", "百川",
]
CN_CITIES = ["上海", "北京", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "广州", "重庆",
             "西安", "天津", "青岛", "宁波", "合肥", "长沙", "郑州", "厦门", "沈阳", "昆明"]
CN_CORES = {
    "technology": ["科技", "信息技术", "软件", "数据", "智能", "电子"],
    "finance": ["金融", "投资", "融资租赁", "资本", "保险经纪"],
    "manufacturing": ["重工", "机械", "制造", "精密", "新材料", "汽车零部件"],
    "energy": ["能源", "电力", "新能源", "石化", "燃气"],
    "retail": ["商贸", "零售", "百货", "连锁超市", "电子商务"],
    "logistics": ["物流", "供应链", "运输", "快运", "仓储"],
    "healthcare": ["医药", "医疗器械", "生物", "健康", "药业"],
    "education": ["教育科技", "教育"],
}
CN_SUFFIXES = ["集团", "有限公司", "股份有限公司", "集团有限公司"]
CN_PUBLIC_BODIES = {
    "government": ["市公共资源交易中心", "市政务服务管理局", "市城市建设投资集团", "市水务集团",
                   "市交通运输局", "市大数据管理局", "市卫生健康委员会", "市自然资源局"],
    "education": ["职业技术学院", "理工大学", "师范学院", "外国语学校", "实验中学", "医学院"],
}
LATIN_FIRST = [
    "Harbor", "Northwind", "Summit", "Pacific", "Silverline", "Evergreen", "Bluewater",
    "Redwood", "Orient", "Crestview", "Ironbridge", "Lakeside", "Maple", "Pioneer",
    "Sterling", "Atlas", "Horizon", "Keystone", "Meridian", "Golden Bay", "Jade River",
    "Granite", "Oakridge", "Brightstar", "Westlake", "Eastgate", "Nova", "Zenith",
]
LATIN_CORES = {
    "technology": ["Technologies", "Systems", "Software", "Digital", "Electronics"],
    "finance": ["Finance", "Capital", "Investments", "Leasing"],
    "manufacturing": ["Industries", "Machinery", "Manufacturing", "Precision", "Materials"],
    "energy": ["Energy", "Power", "Renewables", "Petrochemical"],
    "retail": ["Retail", "Stores", "Trading", "Commerce"],
    "logistics": ["Logistics", "Freight", "Supply Chain", "Shipping"],
    "healthcare": ["Pharma", "Health", "Medical", "Biotech"],
}
LATIN_SUFFIXES = ["Ltd", "Co., Ltd.", "Inc.", "Group", "GmbH", "Holdings", "Corp."]
REGIONS = ["East", "North", "South", "West", "Central", "Northeast", "Southwest"]
REGION_WEIGHTS = [28, 18, 20, 8, 11, 7, 8]
# Two managers per region, plus a key-account director who holds most global accounts
# (15 managers in all).
MANAGERS = {
    "East": ["王敏", "陈晓东"], "North": ["李强", "赵丽娟"], "South": ["张伟", "黄志明"],
    "West": ["刘洋", "马建国"], "Central": ["周婷", "吴俊"], "Northeast": ["孙海涛", "郑雪"],
    "Southwest": ["杨帆", "何静"],
}
KA_DIRECTOR = "林志远"
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙", "胡", "朱",
            "高", "林", "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "董"]
GIVEN = ["伟", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀英", "霞", "平", "刚", "桂英", "晓东", "志强", "海燕", "建华", "文博", "雨欣",
         "子涵", "浩然", "思远", "佳怡"]
COMMENTS_GOOD = ["很满意", "交付及时，服务专业", "产品质量稳定", "客户经理响应很快",
                 "合作愉快，期待继续", "技术支持很到位"]
COMMENTS_MID = ["整体还可以", "价格偏高", "希望加强培训支持", "对账流程可以再简化",
                "交付基本准时，偶有延迟"]
COMMENTS_BAD = ["售后响应慢", "交付多次延期", "发票和对账经常出错", "质量问题反复出现",
                "沟通不顺畅，问题迟迟得不到解决"]
# Comments with an ASCII comma and a line break, so the CSV needs quoting.
COMMENTS_MULTILINE = ["交付及时, 质量稳定\n但发票开具偏慢", "整体满意,希望改进售后\n另外希望增加培训",
                      "响应慢, 问题拖了两周\n请尽快安排专人对接"]
# Chinese New Year dips February; year-end budget spending lifts December.
SEASONALITY = {1: 0.95, 2: 0.7, 3: 1.05, 4: 1.0, 5: 1.0, 6: 1.08, 7: 0.95, 8: 0.95,
               9: 1.05, 10: 0.9, 11: 1.1, 12: 1.25}

CENT = Decimal("0.01")


# --- helpers ------------------------------------------------------------------------

def _money(x: float | Decimal) -> Decimal:
    return Decimal(str(x)).quantize(CENT, rounding=ROUND_HALF_UP)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds")


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _add_months(y: int, m: int, n: int) -> tuple[int, int]:
    k = y * 12 + (m - 1) + n
    return k // 12, k % 12 + 1


def _parse_month(s: str) -> tuple[int, int]:
    try:
        y, m = (int(p) for p in s.split("-"))
        date(y, m, 1)
    except ValueError:
        raise ValueError(f"end_month must be YYYY-MM, got {s!r}") from None
    if len(s) != 7:
        raise ValueError(f"end_month must be YYYY-MM, got {s!r}")
    return y, m


def _poisson(r: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation; Knuth's method gets slow and underflows
        return max(0, round(r.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, r.random()
    while p > limit:
        k += 1
        p *= r.random()
    return k


def _weighted(r: random.Random, weights: dict[str, float]) -> str:
    return r.choices(list(weights), weights=list(weights.values()))[0]


def _person(r: random.Random) -> str:
    return r.choice(SURNAMES) + r.choice(GIVEN)


@dataclass
class Window:
    """The history covered and the moment the extract is taken."""

    months: list[tuple[int, int]]
    start: date
    end: date
    extract_at: datetime  # caps every updated_at: the data is "as of" this instant

    def stamp_after(self, r: random.Random, day: date, min_days: int, max_days: int) -> datetime:
        """A working-hours timestamp some days after `day`, never after the extract."""
        ts = datetime.combine(day, time(0), TZ) + timedelta(
            days=r.randint(min_days, max_days), seconds=r.randint(8 * 3600, 20 * 3600))
        if ts > self.extract_at:
            ts = self.extract_at - timedelta(seconds=r.randint(0, 5 * 3600))
        return ts


def _window(years: int, end_month: str) -> Window:
    ey, em = _parse_month(end_month)
    months = [_add_months(ey, em, -i) for i in range(years * 12 - 1, -1, -1)]
    end = _month_end(ey, em)
    # First thing in the morning after the month closes.
    extract_at = datetime.combine(end + timedelta(days=1), time(6, 0), TZ)
    return Window(months, date(*months[0], 1), end, extract_at)


# --- customers ----------------------------------------------------------------------

@dataclass
class Customer:
    cid: str
    name: str
    industry: str
    scope: str
    region: str
    manager: str
    signed_on: date
    updated_at: datetime
    health: float  # latent: drives payment discipline, survey scores and churn together
    order_rate: float  # expected orders per month
    order_value: float  # typical order value in CNY
    growth: float  # log growth per year of order volume
    churn_on: date | None
    terms_days: int
    fx_currency: str | None
    fx_share: float
    has_contracts: bool
    payer: str  # good | late | partial | defaulter
    method: str


def _company_name(r: random.Random, industry: str) -> str:
    if industry in CN_PUBLIC_BODIES and (industry == "government" or r.random() < 0.6):
        return r.choice(CN_CITIES) + r.choice(CN_PUBLIC_BODIES[industry])
    if industry in LATIN_CORES and r.random() < 0.3:
        return f"{r.choice(LATIN_FIRST)} {r.choice(LATIN_CORES[industry])} {r.choice(LATIN_SUFFIXES)}"
    city = r.choice(CN_CITIES) if r.random() < 0.35 else ""
    return city + r.choice(CN_PREFIXES) + r.choice(CN_CORES[industry]) + r.choice(CN_SUFFIXES)


def _customers(n: int, w: Window, seed: int) -> list[Customer]:
    r = random.Random(f"{seed}:customers")
    used: set[str] = set()
    out: list[Customer] = []
    for i in range(1, n + 1):
        industry = _weighted(r, INDUSTRY_WEIGHTS)
        name = _company_name(r, industry)
        for _ in range(20):  # names are a master-data key in practice: keep them unique
            if name not in used:
                break
            name = _company_name(r, industry)
        else:
            name = f"{name}（{i}）"
        used.add(name)

        scope = _weighted(r, {"global": 5, "national": 30, "local": 65})
        region = r.choices(REGIONS, weights=REGION_WEIGHTS)[0]
        manager = KA_DIRECTOR if scope == "global" and r.random() < 0.7 else r.choice(MANAGERS[region])

        # ~60% were customers before the history starts, the rest sign during it.
        if r.random() < 0.6:
            signed_on = w.start - timedelta(days=r.randint(1, 8 * 365))
        else:
            signed_on = w.start + timedelta(days=r.randint(0, max(0, (w.end - w.start).days - 45)))
        touched = max(signed_on, w.start - timedelta(days=400))
        updated_at = w.stamp_after(r, touched, 1, max(1, (w.end - touched).days))

        health = r.gauss(0, 1)
        size = r.gauss(0, 1)
        scope_mult = {"global": 4.0, "national": 1.6, "local": 1.0}[scope]
        # Lognormal size with sigma ~1.3 plus correlated frequency: the top 20% of
        # customers bring roughly 80% of revenue.
        order_value = 18000 * scope_mult * math.exp(1.1 * size + 0.4 * r.gauss(0, 1))
        order_rate = math.exp(0.32 + 0.45 * size + 0.5 * r.gauss(0, 1))
        kind = r.random()
        if kind < 0.2:
            growth = r.uniform(0.15, 0.6)
        elif kind < 0.4:
            growth = -r.uniform(0.15, 0.6)
        else:
            growth = r.uniform(-0.08, 0.08)
        growth += 0.08 * health

        churn_on = None
        if r.random() < (0.07 if health > 0 else 0.17):
            lo = max(signed_on + timedelta(days=120), w.start + timedelta(days=90))
            hi = w.end - timedelta(days=30)
            if lo < hi:
                churn_on = lo + timedelta(days=r.randint(0, (hi - lo).days))

        if industry in ("government", "education"):
            terms = r.choice([60, 60, 45])
        elif scope == "global":
            terms = r.choice([45, 60])
        else:
            terms = r.choice([30, 30, 45, 60])

        fx_currency, fx_share = None, 0.0
        p_fx = {"global": 0.35, "national": 0.05, "local": 0.02}[scope]
        if r.random() < p_fx:
            fx_currency = "USD" if r.random() < 0.7 else "EUR"
            fx_share = r.uniform(0.3, 0.8)

        has_contracts = r.random() < (0.9 if scope != "local" else 0.65)

        score = 0.8 * health + 0.6 * r.gauss(0, 1)
        payer = ("defaulter" if score < -1.75 else "partial" if score < -1.15
                 else "late" if score < -0.5 else "good")
        method = r.choices(["bank_transfer", "acceptance_bill", "cheque"], weights=[70, 22, 8])[0]

        out.append(Customer(f"C{i:06d}", name, industry, scope, region, manager, signed_on,
                            updated_at, health, order_rate, order_value, growth, churn_on, terms,
                            fx_currency, fx_share, has_contracts, payer, method))

    # Even a tiny demo should carry some USD and EUR business: give it to the steadiest
    # long-standing accounts if the draw produced none.
    steady = sorted((c for c in out if c.signed_on < w.start and c.churn_on is None),
                    key=lambda c: (-c.order_rate, c.cid))
    for cur in ("USD", "EUR"):
        if not any(c.fx_currency == cur for c in out):
            for c in steady:
                if c.fx_currency is None:
                    c.fx_currency, c.fx_share = cur, 0.5
                    break
    return out


# --- fx -----------------------------------------------------------------------------

def _fx_rates(w: Window, seed: int) -> dict[tuple[str, str], Decimal]:
    r = random.Random(f"{seed}:fx")
    rates: dict[tuple[str, str], Decimal] = {}
    for cur, level, step, lo, hi in (("USD", 7.2, 0.02, 7.10, 7.30), ("EUR", 7.8, 0.05, 7.60, 8.00)):
        x = level
        for y, m in w.months:
            x = min(hi, max(lo, x + r.gauss(0, step)))
            rates[(cur, f"{y:04d}-{m:02d}")] = Decimal(str(x)).quantize(Decimal("0.0001"))
    return rates


# --- orders -------------------------------------------------------------------------

@dataclass
class Order:
    order_date: date
    cid: str
    seq: int
    contract_id: str
    status: str
    currency: str
    list_amount: Decimal
    net_amount: Decimal
    cost_amount: Decimal | None
    updated_at: datetime
    order_id: str = ""

    def row(self) -> list[str]:
        return [self.order_id, self.cid, self.contract_id, self.order_date.isoformat(),
                self.status, self.currency, str(self.list_amount), str(self.net_amount),
                "" if self.cost_amount is None else str(self.cost_amount), _iso(self.updated_at)]


def _contract_year(signed_on: date, d: date) -> int:
    # Contracts renew on the signing anniversary (29 Feb signings renew on 28 Feb).
    day = 28 if (signed_on.month, signed_on.day) == (2, 29) else signed_on.day
    anniversary = date(d.year, signed_on.month, day)
    return d.year if d >= anniversary else d.year - 1


def _status(r: random.Random, days_before_end: int) -> str:
    # Recent orders are often not delivered yet; a few old ones are stuck open.
    p_open = 0.35 if days_before_end < 14 else 0.08 if days_before_end < 60 else 0.002
    x = r.random()
    if x < p_open:
        return "open"
    if x < p_open + 0.03:
        return "cancelled"
    if x < p_open + 0.045:
        return "returned"
    return "completed"


def _orders(customers: list[Customer], w: Window, fx: dict[tuple[str, str], Decimal],
            seed: int) -> list[Order]:
    orders: list[Order] = []
    for c in customers:
        r = random.Random(f"{seed}:orders:{c.cid}")
        first = max(w.start, c.signed_on)
        last = w.end if c.churn_on is None else min(w.end, c.churn_on - timedelta(days=1))
        seq = 0
        for y, m in w.months:
            m_start, m_end = date(y, m, 1), _month_end(y, m)
            lo, hi = max(first, m_start), min(last, m_end)
            if lo > hi:
                continue
            t = ((m_start - w.start).days + 15) / 365.25
            lam = c.order_rate * math.exp(c.growth * t) * SEASONALITY[m]
            lam *= ((hi - lo).days + 1) / m_end.day
            if (lo - c.signed_on).days < 90:
                lam *= 0.6  # new accounts ramp up
            if c.churn_on is not None and (c.churn_on - hi).days < 180:
                lam *= 0.6  # and fading ones wind down before they leave
            for _ in range(_poisson(r, lam)):
                d = lo + timedelta(days=r.randint(0, (hi - lo).days))
                cny = max(50.0, c.order_value * math.exp(0.3 * c.growth * t) * r.lognormvariate(-0.1, 0.45))
                currency = c.fx_currency if c.fx_currency and r.random() < c.fx_share else "CNY"
                rate = fx[(currency, f"{y:04d}-{m:02d}")] if currency != "CNY" else Decimal(1)
                net = max(CENT, _money(Decimal(str(cny)) / rate))
                discount = 0.0 if r.random() < 0.2 else r.uniform(0.0, 0.20)
                list_amount = _money(net / Decimal(str(1 - discount)))
                cost = None if r.random() < 0.05 else _money(net * Decimal(str(r.uniform(0.60, 0.85))))
                contract = ""
                if c.has_contracts and r.random() > 0.05:
                    contract = f"CT-{c.cid}-{_contract_year(c.signed_on, d)}"
                status = _status(r, (w.end - d).days)
                lag = {"open": (0, 2), "completed": (1, 25)}.get(status, (3, 40))
                seq += 1
                orders.append(Order(d, c.cid, seq, contract, status, currency, list_amount,
                                    net, cost, w.stamp_after(r, d, *lag)))
    orders.sort(key=lambda o: (o.order_date, o.cid, o.seq))
    for i, o in enumerate(orders, 1):
        o.order_id = f"SO{i:07d}"
    return orders


def _order_updates(orders: list[Order], w: Window, seed: int) -> tuple[list[Order], list[Order]]:
    """The second delivery: about half the open orders now completed, plus re-sends.

    Returns (rows of part-0002, the final state of every order).
    """
    r = random.Random(f"{seed}:order-updates")
    updates: dict[str, Order] = {}
    for o in orders:
        if o.status == "open" and r.random() < 0.35:
            later = max(o.updated_at, w.extract_at) + timedelta(
                days=r.randint(1, 10), seconds=r.randint(0, 8 * 3600))
            updates[o.order_id] = Order(o.order_date, o.cid, o.seq, o.contract_id, "completed",
                                        o.currency, o.list_amount, o.net_amount, o.cost_amount,
                                        later, o.order_id)
    # Extract jobs sometimes send a row again unchanged; the loader must not count it twice.
    untouched = [o for o in orders if o.order_id not in updates]
    resent = r.sample(untouched, min(len(untouched), max(3, len(orders) // 5000)))
    part2 = sorted([*updates.values(), *resent], key=lambda o: o.order_id)
    final = [updates.get(o.order_id, o) for o in orders]
    return part2, final


# --- receivables --------------------------------------------------------------------

@dataclass
class Invoice:
    invoice_id: str
    cid: str
    order_id: str
    invoice_date: date
    due_date: date
    currency: str
    amount: Decimal
    updated_at: datetime


def _invoices(final_orders: list[Order], customers: dict[str, Customer], w: Window,
              seed: int) -> list[Invoice]:
    r = random.Random(f"{seed}:invoices")
    drafts = []
    for o in final_orders:  # already in order_id order
        if o.status != "completed":
            continue
        inv_date = o.order_date + timedelta(days=r.randint(0, 5))
        if inv_date > w.end:
            continue
        due = inv_date + timedelta(days=customers[o.cid].terms_days)
        drafts.append((inv_date, o, due, w.stamp_after(r, inv_date, 0, 2)))
    drafts.sort(key=lambda d: (d[0], d[1].order_id))
    return [Invoice(f"INV{i:08d}", o.cid, o.order_id, inv_date, due, o.currency, o.net_amount, ts)
            for i, (inv_date, o, due, ts) in enumerate(drafts, 1)]


def _payment_plan(r: random.Random, c: Customer, inv: Invoice) -> list[tuple[date, Decimal]]:
    """The receipts an invoice will get, as (date, amount); may be empty (never paid)."""

    def on_time() -> date:
        return inv.due_date + timedelta(days=min(7, max(-20, round(r.gauss(-2, 4)))))

    def late(lo: int, mode: int) -> date:
        return inv.due_date + timedelta(days=round(r.triangular(lo, 120, mode)))

    amount = inv.amount
    if c.payer == "good":
        if r.random() < 0.002:
            return []
        when = late(5, 12) if r.random() < 0.06 else on_time()
    elif c.payer == "late":
        when = late(10, 30) if r.random() < 0.8 else on_time()
    elif c.payer == "partial":
        when = late(10, 25) if r.random() < 0.3 else on_time()
        if r.random() < 0.45:
            amount = max(CENT, _money(amount * Decimal(str(r.uniform(0.50, 0.95)))))
            return [(max(when, inv.invoice_date), amount)]
    else:  # defaulter
        if r.random() < 0.45:
            return []
        when = late(20, 60)
    when = max(when, inv.invoice_date)

    x = r.random()
    if x < 0.04 and amount >= Decimal("1.00"):
        first = _money(amount * Decimal(str(r.uniform(0.3, 0.7))))
        second_when = when + timedelta(days=r.randint(15, 60))
        return [(when, first), (second_when, amount - first)]
    if x < 0.045:
        # Rounded-up or duplicated bank charges: slightly more than invoiced.
        return [(when, amount + max(CENT, _money(amount * Decimal(str(r.uniform(0.001, 0.02))))))]
    return [(when, amount)]


def _payments(invoices: list[Invoice], customers: dict[str, Customer], w: Window,
              seed: int) -> list[list[str]]:
    by_customer: dict[str, list[Invoice]] = {}
    for inv in invoices:
        by_customer.setdefault(inv.cid, []).append(inv)
    drafts = []
    for cid in sorted(by_customer):
        c = customers[cid]
        r = random.Random(f"{seed}:payments:{cid}")
        for inv in by_customer[cid]:
            for k, (when, amount) in enumerate(_payment_plan(r, c, inv)):
                if when > w.end:  # not received yet at extract time
                    continue
                if inv.currency != "CNY":
                    method = "bank_transfer"  # acceptance bills and cheques are CNY instruments
                elif r.random() < 0.85:
                    method = c.method
                else:
                    method = r.choice(["bank_transfer", "acceptance_bill", "cheque"])
                drafts.append((when, inv.invoice_id, k, inv, amount, method,
                               w.stamp_after(r, when, 0, 3)))
    drafts.sort(key=lambda d: (d[0], d[1], d[2]))
    return [[f"PAY{i:08d}", inv.invoice_id, inv.cid, when.isoformat(), inv.currency, str(amount),
             method, _iso(ts)]
            for i, (when, _, _, inv, amount, method, ts) in enumerate(drafts, 1)]


# --- surveys ------------------------------------------------------------------------

def _clip(x: float, lo: int, hi: int) -> int:
    return min(hi, max(lo, round(x)))


def _surveys(customers: list[Customer], w: Window, seed: int) -> list[list[str]]:
    r = random.Random(f"{seed}:surveys")
    # Each account has a stable pool of contacts who answer over the waves.
    email_no = 0
    contacts: dict[str, list[tuple[str, str, str]]] = {}
    for c in customers:
        pool = []
        for _ in range(r.randint(1, 4)):
            email_no += 1
            phone = f"138{r.randint(0, 99_999_999):08d}" if r.random() < 0.8 else ""
            email = f"user{email_no}@example.com" if r.random() < 0.7 else ""
            pool.append((_person(r), phone, email))
        contacts[c.cid] = pool

    drafts = []
    first_q = (w.start.year, (w.start.month - 1) // 3 + 1)
    last_q = (w.end.year, (w.end.month - 1) // 3 + 1)
    y, q = first_q
    while (y, q) <= last_q:
        # A wave runs in the middle month of its quarter; it is skipped unless that month
        # lies wholly inside the history.
        month = 3 * (q - 1) + 2
        lo, hi = date(y, month, 5), date(y, month, 25)
        if w.start <= date(y, month, 1) and _month_end(y, month) <= w.end:
            for c in customers:
                if c.signed_on > lo or (c.churn_on is not None and c.churn_on < lo):
                    continue
                if r.random() >= 0.4:
                    continue
                n = r.choices([1, 2, 3], weights=[60, 30, 10])[0]
                for k, (name, phone, email) in enumerate(r.sample(contacts[c.cid], min(n, len(contacts[c.cid])))):
                    drafts.append((*_survey_answer(r, c, lo, hi, name, phone, email), k, c.cid, f"{y}Q{q}"))
        y, q = (y + 1, 1) if q == 4 else (y, q + 1)

    drafts.sort(key=lambda d: (d[0], d[-2], d[-3]))
    rows = []
    for i, (submitted, answers, updated, _, cid, wave) in enumerate(drafts, 1):
        rows.append([f"R{i:07d}", cid, wave, _iso(submitted), *answers, _iso(updated)])
    return rows


def _survey_answer(r: random.Random, c: Customer, lo: date, hi: date, name: str, phone: str,
                   email: str) -> tuple[datetime, list[str], datetime]:
    submitted = datetime.combine(lo, time(0), TZ) + timedelta(
        days=r.randint(0, (hi - lo).days), seconds=r.randint(8 * 3600, 21 * 3600))
    # Scores move with the same latent health that drives payment discipline.
    base = 3.7 + 0.75 * c.health + r.gauss(0, 0.6)
    nps = "" if r.random() < 0.05 else str(_clip(7 + 1.8 * c.health + r.gauss(0, 1.5), 0, 10))
    sat = "" if r.random() < 0.05 else str(_clip(base, 1, 5))
    subs = ["" if r.random() < 0.03 else str(_clip(base + r.gauss(0, 0.6), 1, 5)) for _ in range(4)]
    comment = ""
    if r.random() < 0.35:
        if r.random() < 0.1:
            comment = r.choice(COMMENTS_MULTILINE)
        else:
            comment = r.choice(COMMENTS_GOOD if base >= 4 else COMMENTS_MID if base >= 3 else COMMENTS_BAD)
    if r.random() < 0.1:
        name = ""  # some respondents stay anonymous
    updated = submitted + timedelta(seconds=r.randint(60, 3 * 86400))
    return submitted, [nps, sat, *subs, comment, name, phone, email], updated


# --- output -------------------------------------------------------------------------

def _write(path: Path, header: list[str], rows: list[list[str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The pipeline skips `.tmp` names, so a half-written file is never ingested.
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
    return len(rows)


def generate(out_dir: Path, customers: int = 2000, years: int = 3, seed: int = 42,
             end_month: str = "2026-10") -> dict:
    """Write the demo inbox under `out_dir`; return rows written per feed."""
    if customers < 1 or years < 1:
        raise ValueError("customers and years must be at least 1")
    out_dir = Path(out_dir)
    w = _window(years, end_month)
    custs = _customers(customers, w, seed)
    by_id = {c.cid: c for c in custs}
    fx = _fx_rates(w, seed)
    orders = _orders(custs, w, fx, seed)
    part2, final_orders = _order_updates(orders, w, seed)
    invoices = _invoices(final_orders, by_id, w, seed)
    payments = _payments(invoices, by_id, w, seed)
    surveys = _surveys(custs, w, seed)

    counts = {
        "customers": _write(out_dir / "customers" / "part-0001.csv", HEADERS["customers"], [
            [c.cid, c.name, c.industry, c.scope, c.region, c.manager, c.signed_on.isoformat(),
             _iso(c.updated_at)] for c in custs]),
        "orders": _write(out_dir / "orders" / "part-0001.csv", HEADERS["orders"],
                         [o.row() for o in orders])
        + _write(out_dir / "orders" / "part-0002.csv", HEADERS["orders"], [o.row() for o in part2]),
        "invoices": _write(out_dir / "invoices" / "part-0001.csv", HEADERS["invoices"], [
            [i.invoice_id, i.cid, i.order_id, i.invoice_date.isoformat(), i.due_date.isoformat(),
             i.currency, str(i.amount), _iso(i.updated_at)] for i in invoices]),
        "payments": _write(out_dir / "payments" / "part-0001.csv", HEADERS["payments"], payments),
        "survey_responses": _write(out_dir / "survey_responses" / "part-0001.csv",
                                   HEADERS["survey_responses"], surveys),
        "fx_rates": _write(out_dir / "fx_rates" / "part-0001.csv", HEADERS["fx_rates"], [
            [cur, month, str(rate)] for (cur, month), rate in sorted(fx.items())]),
    }
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate a deterministic demo inbox.")
    p.add_argument("--out", required=True, type=Path, help="inbox folder to write")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--years", type=int, default=3, help="full years of history")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--end-month", default="2026-10", help="last month of history, YYYY-MM")
    args = p.parse_args(argv)
    try:
        counts = generate(args.out, args.customers, args.years, args.seed, args.end_month)
    except ValueError as e:
        p.error(str(e))
    print(f"demo inbox {args.out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
