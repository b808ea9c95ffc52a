"""metrics.md "Tiers": raw tiers, the grace period (0, 1, 2 months), manual overrides,
migration and summary, on a population whose raw tiers are worked out by hand.

BIG and X are local customers without invoices or history before 2024-01, so growth is
null, e = 1 and V = revenue_12m (cumulative within the first 12 months):
- BIG orders 1,000,000 in Jan, 1,000,000 in Feb and 4,000,000 in Mar: V = 1M, 2M, 6M, 6M, 6M.
- X orders 300,000 in Jan: V = 300,000 every month.
BIG ranks first (share_before 0: A). X's share_before = V_BIG / (V_BIG + 300,000):
Jan 1/1.3 = 0.769 (A), Feb 2/2.3 = 0.870 (B), Mar-May 6/6.3 = 0.952 (C).
Z has no orders: V = 0, raw C, no rank.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import rows, run, write_inbox

TS = "2024-06-05T08:00:00+08:00"
BASE = {
    "customers/part-0001.csv": f"""
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        BIG,大客户集团,energy,local,East,王敏,2023-01-01,{TS}
        X,Xenon Ltd,retail,local,East,王敏,2023-01-01,{TS}
        Z,Zeta,retail,local,East,王敏,2023-01-01,{TS}
    """,
    "orders/part-0001.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        B1,BIG,,2024-01-10,completed,CNY,1000000,1000000,,{TS}
        B2,BIG,,2024-02-10,completed,CNY,1000000,1000000,,{TS}
        B3,BIG,,2024-03-10,completed,CNY,4000000,4000000,,{TS}
        X1,X,,2024-01-10,completed,CNY,300000,300000,,{TS}
    """,
}
OVERRIDES = {
    "tier_overrides/part-0001.csv": f"""
        customer_id,eval_month,tier,reason,approved_by,updated_at
        X,2024-02,A,strategic account kept at A,销售总监,{TS}
        BIG,2024-03,B,dispute under review,CFO,{TS}
        X,2024-05,A,not approved yet,,{TS}
    """,
}


def _build(tmp_path_factory, name, files, **kwargs):
    root = tmp_path_factory.mktemp(name)
    warehouse = root / "wh.duckdb"
    run(write_inbox(root / "inbox", files), warehouse, "2024-05", **kwargs)
    return warehouse


def _history(wh, customer):
    return [
        (r["eval_month"], r["raw_tier"], r["tier"], r["previous_tier"], r["tier_change"], r["months_below"])
        for r in rows(wh, "select * from marts.customer_tier_monthly where customer_id = ? order by eval_month",
                      [customer])
    ]


@pytest.fixture(scope="module")
def grace1(tmp_path_factory):
    return _build(tmp_path_factory, "grace1", BASE)


def test_raw_tiers_from_shares(grace1):
    x = rows(grace1, "select eval_month, value_score, value_rank, share_before, raw_tier from marts.customer_tier_monthly "
                     "where customer_id = 'X' order by eval_month")
    assert [r["raw_tier"] for r in x] == ["A", "B", "C", "C", "C"]
    assert [r["share_before"] for r in x] == [D("0.7692"), D("0.8696"), D("0.9524"), D("0.9524"), D("0.9524")]
    assert all(r["value_score"] == D("300000.00") and r["value_rank"] == 2 for r in x)


def test_default_grace_one_month(grace1):
    # the spec's own sequence: raw A, B, C, C, C from A -> A unchanged/new, A held, B demoted, B held, C demoted
    assert _history(grace1, "X") == [
        ("2024-01", "A", "A", None, "new", 0),
        ("2024-02", "B", "A", "A", "held", 1),
        ("2024-03", "C", "B", "A", "demoted", 2),
        ("2024-04", "C", "B", "B", "held", 1),
        ("2024-05", "C", "C", "B", "demoted", 2),
    ]
    assert [h[2] for h in _history(grace1, "Z")] == ["C"] * 5
    assert _history(grace1, "Z")[0][4] == "new"


def test_grace_zero_demotes_at_once(tmp_path_factory):
    wh = _build(tmp_path_factory, "grace0", BASE, dbt_vars={"grace_months": 0})
    assert [(h[2], h[4]) for h in _history(wh, "X")] == [
        ("A", "new"), ("B", "demoted"), ("C", "demoted"), ("C", "unchanged"), ("C", "unchanged"),
    ]


def test_grace_two_demotes_to_best_raw_tier_of_the_run(tmp_path_factory):
    wh = _build(tmp_path_factory, "grace2", BASE, dbt_vars={"grace_months": 2})
    # below A for Feb (B), Mar (C), Apr (C): demoted in Apr to the best of them, B; May starts a new run
    assert _history(wh, "X") == [
        ("2024-01", "A", "A", None, "new", 0),
        ("2024-02", "B", "A", "A", "held", 1),
        ("2024-03", "C", "A", "A", "held", 2),
        ("2024-04", "C", "B", "A", "demoted", 3),
        ("2024-05", "C", "B", "B", "held", 1),
    ]


def test_override_sets_tier_and_later_months_start_from_it(tmp_path_factory):
    wh = _build(tmp_path_factory, "override", {**BASE, **OVERRIDES}, reject_threshold=1.0)
    assert _history(wh, "X") == [
        ("2024-01", "A", "A", None, "new", 0),
        ("2024-02", "B", "A", "A", "override", 0),
        ("2024-03", "C", "A", "A", "held", 1),
        ("2024-04", "C", "C", "A", "demoted", 2),
        ("2024-05", "C", "C", "C", "unchanged", 0),  # the unapproved override is not applied
    ]
    assert [(h[2], h[4]) for h in _history(wh, "BIG")] == [
        ("A", "new"), ("A", "unchanged"), ("B", "override"), ("A", "promoted"), ("A", "unchanged"),
    ]
    reason = rows(wh, "select reason from marts.customer_tier_monthly where customer_id = 'X' and eval_month = '2024-02'")
    assert "strategic account kept at A" in reason[0]["reason"] and "销售总监" in reason[0]["reason"]
    rejected = rows(wh, "select customer_id, eval_month, _reason from quarantine.tier_overrides")
    assert rejected == [{"customer_id": "X", "eval_month": "2024-05", "_reason": "not_approved"}]


def test_migration_counts_and_shares(grace1):
    mig = {(r["from_tier"], r["to_tier"]): r for r in
           rows(grace1, "select * from marts.tier_migration_monthly where eval_month = '2024-03'")}
    assert len(mig) == 9
    # Feb tiers BIG A, X A, Z C -> Mar BIG A, X B, Z C
    assert (mig[("A", "A")]["customers"], mig[("A", "B")]["customers"], mig[("C", "C")]["customers"]) == (1, 1, 1)
    assert mig[("A", "A")]["share_of_from"] == D("0.5000") and mig[("C", "C")]["share_of_from"] == D("1.0000")
    assert mig[("B", "B")]["customers"] == 0 and mig[("B", "B")]["share_of_from"] is None
    assert rows(grace1, "select * from marts.tier_migration_monthly where eval_month = '2024-01'") == []


def test_summary_per_tier(grace1):
    s = {r["tier"]: r for r in rows(grace1, "select * from marts.tier_summary_monthly where eval_month = '2024-03'")}
    assert {t: s[t]["customers"] for t in "ABC"} == {"A": 1, "B": 1, "C": 1}
    assert s["A"]["share_of_value"] == D("0.9524") and s["B"]["share_of_value"] == D("0.0476")
    assert s["C"]["share_of_value"] == D("0.0000")
    assert s["A"]["revenue_12m"] == D("6000000") and s["B"]["revenue_12m"] == D("300000")
    assert s["A"]["share_of_customers"] == D("0.3333")


def test_migration_and_summary_cover_months_before_anybody_is_evaluated(tmp_path_factory):
    """metrics.md: evaluation months are global, from the earliest completed order of any customer,
    in the master or not. An orphan's order of 2023-12 starts them; N signs on in 2024-02. So
    2024-01 (previous month 2023-12, nobody evaluated) and 2024-02 (previous month 2024-01, nobody)
    have an all-zero grid, and the summary lists 0 customers per tier until 2024-02."""
    wh = _build(tmp_path_factory, "before_anybody", {
        "customers/part-0001.csv": f"""
            customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
            N,New Ltd,retail,local,East,王敏,2024-02-15,{TS}
        """,
        "orders/part-0001.csv": f"""
            order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
            G1,GHOST,,2023-12-20,completed,CNY,50,50,,{TS}
            N1,N,,2024-03-10,completed,CNY,100,100,,{TS}
        """,
    })
    grid = {}
    for r in rows(wh, "select * from marts.tier_migration_monthly"):
        grid.setdefault(r["eval_month"], {})[(r["from_tier"], r["to_tier"])] = (r["customers"], r["share_of_from"])
    assert sorted(grid) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert all(len(cells) == 9 for cells in grid.values())
    for month in ("2024-01", "2024-02"):  # nobody evaluated in the previous month
        assert set(grid[month].values()) == {(0, None)}
    # N: C in 2024-02 (no order yet), A from 2024-03 (the only positive V): promoted
    assert grid["2024-03"][("C", "A")] == (1, D("1.0000"))
    assert sum(c for c, _ in grid["2024-03"].values()) == 1
    summary = {(r["eval_month"], r["tier"]): r["customers"] for r in rows(wh, "select * from marts.tier_summary_monthly")}
    assert sorted({m for m, _ in summary}) == ["2023-12", "2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert [summary[("2024-01", t)] for t in "ABC"] == [0, 0, 0]
    assert [summary[("2024-02", t)] for t in "ABC"] == [0, 0, 1]
    assert [summary[("2024-05", t)] for t in "ABC"] == [1, 0, 0]
