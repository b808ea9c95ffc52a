"""spec/example: `keyaccounts run` through 2024-06 reproduces the hand-computed tier table."""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import rows

COLUMNS = ["customer_id", "eval_month", "value_score", "value_rank", "raw_tier", "tier", "previous_tier",
           "tier_change", "collection_rate_12m", "nps_12m", "loyalty_score"]
NUMERIC = {"value_score", "value_rank", "collection_rate_12m", "nps_12m", "loyalty_score"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, example_dir):
    out = tmp_path_factory.mktemp("example")
    warehouse = out / "wh.duckdb"
    cli = Path(sys.executable).parent / "keyaccounts"
    proc = subprocess.run(
        [str(cli), "run", "--inbox", str(example_dir / "inbox"), "--warehouse", str(warehouse), "--through", "2024-06"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return warehouse, proc


def _normalise(col, value):
    if value is None or value == "":
        return None
    return Decimal(str(value)) if col in NUMERIC else str(value)


def test_tier_table_matches_expected_exactly(built, example_dir):
    warehouse, _ = built
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        expected = {(r["customer_id"], r["eval_month"]): r for r in csv.DictReader(fh)}
    got = {(r["customer_id"], r["eval_month"]): r
           for r in rows(warehouse, f"select {', '.join(COLUMNS)} from marts.customer_tier_monthly")}
    assert set(got) == set(expected)
    mismatches = [
        (key, col, exp[col], got[key][col])
        for key, exp in expected.items()
        for col in COLUMNS
        if _normalise(col, exp[col]) != _normalise(col, got[key][col])
    ]
    assert mismatches == []


def test_published_precision(built):
    """value_score has 2 decimals, rates 4, NPS and loyalty 1 (metrics.md Arithmetic)."""
    warehouse, _ = built
    r = rows(warehouse, "select value_score, collection_rate_12m, nps_12m, loyalty_score from marts.customer_tier_monthly "
                        "where customer_id = 'K4' and eval_month = '2024-06'")[0]
    assert r["value_score"] == Decimal("223306.67")
    assert r["collection_rate_12m"].as_tuple().exponent == -4
    assert r["loyalty_score"] == Decimal("56.7")


def test_run_prints_where_the_table_and_exports_are(built):
    warehouse, proc = built
    assert "marts.customer_tier_monthly" in proc.stdout
    csv_path = warehouse.parent / "exports" / "tiers_2024-06.csv"
    assert csv_path.exists() and (warehouse.parent / "exports" / "tiers_2024-06.parquet").exists()
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    text = raw.decode("utf-8-sig")
    assert "华东重工集团" in text
    assert len(text.strip().splitlines()) == 1 + 6  # header + six customers


def test_second_run_changes_nothing(built, example_dir):
    """Re-running the same command takes no file again and leaves the tier table identical."""
    warehouse, _ = built
    before = rows(warehouse, "select * from marts.customer_tier_monthly order by customer_id, eval_month")
    cli = Path(sys.executable).parent / "keyaccounts"
    proc = subprocess.run(
        [str(cli), "run", "--inbox", str(example_dir / "inbox"), "--warehouse", str(warehouse), "--through", "2024-06"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    after = rows(warehouse, "select * from marts.customer_tier_monthly order by customer_id, eval_month")
    assert after == before
    counts = rows(warehouse, "select count(*) as n from raw.orders")[0]["n"]
    assert counts == 91  # 89 + 2 rows of the example's two order files, taken once


def test_tier_summary_means_are_of_unrounded_measures(built):
    """metrics.md: formulas use unrounded inputs. Each tier's mean collection rate and mean NPS are
    recomputed here from the exact sums and counts of the marts (collected / billed, 100 * (promoters -
    detractors) / answers) and rounded once, half away from zero; averaging the published (rounded)
    rates gave 0.9584 for tier C in 2024-04, where the exact mean is 0.9583."""
    from decimal import ROUND_HALF_UP

    warehouse, _ = built
    per_customer = rows(warehouse, """
        select t.eval_month, t.tier, r.collected_12m, r.billed_due_12m, l.promoters_12m, l.detractors_12m,
               l.nps_responses_12m
        from marts.customer_tier_monthly as t
        join marts.customer_receivables_monthly as r using (customer_id, eval_month)
        join marts.customer_loyalty_monthly as l using (customer_id, eval_month)""")
    groups: dict[tuple, dict[str, list]] = {}
    for r in per_customer:
        g = groups.setdefault((r["eval_month"], r["tier"]), {"rate": [], "nps": []})
        if r["billed_due_12m"]:
            g["rate"].append(Decimal(r["collected_12m"]) / Decimal(r["billed_due_12m"]))
        if r["nps_responses_12m"]:
            g["nps"].append(Decimal(100 * (r["promoters_12m"] - r["detractors_12m"])) / r["nps_responses_12m"])

    def mean(values, places):
        return (sum(values) / len(values)).quantize(Decimal(places), ROUND_HALF_UP) if values else None

    summary = {(r["eval_month"], r["tier"]): r for r in rows(
        warehouse, "select * from marts.tier_summary_monthly where customers > 0")}
    assert set(summary) == set(groups)
    for key, g in groups.items():
        assert summary[key]["mean_collection_rate"] == mean(g["rate"], "0.0001"), key
        assert summary[key]["mean_nps"] == mean(g["nps"], "0.1"), key
    assert summary[("2024-04", "C")]["mean_collection_rate"] == Decimal("0.9583")
