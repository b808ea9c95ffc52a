"""scripts/benchmark.py (issue 8): its two independent implementations of the tier table (the
one-query DuckDB floor and the pandas version) reproduce the spec's worked example exactly, and
`--scale S` runs end to end with the floor, pandas and the pipeline agreeing. Not a timed test:
the figures are in docs/benchmarks.md."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["value_score", "value_rank", "raw_tier", "tier", "previous_tier", "tier_change",
           "collection_rate_12m", "nps_12m", "loyalty_score"]
NUMERIC = {"value_score", "value_rank", "collection_rate_12m", "nps_12m", "loyalty_score"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _norm(col: str, value):
    if value is None or value == "" or str(value) in ("nan", "<NA>", "None", "NaN"):
        return None
    return Decimal(str(value)).normalize() if col in NUMERIC else str(value)


def _table(bench, impl: str, inbox: Path, through: str) -> dict:
    fn = bench.floor_tier_table if impl == "floor" else bench.pandas_tier_table
    df = fn(inbox, through, months="all")
    return {(r["customer_id"], r["eval_month"]): r for r in df.to_dict("records")}


@pytest.mark.parametrize("impl", ["floor", "pandas"])
def test_reproduces_the_worked_example_exactly(bench, example_dir, impl):
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        expected = {(r["customer_id"], r["eval_month"]): r for r in csv.DictReader(fh)}
    got = _table(bench, impl, example_dir / "inbox", "2024-06")
    assert set(got) == set(expected)
    mismatches = [(key, col, exp[col], got[key][col]) for key, exp in sorted(expected.items()) for col in COLUMNS
                  if _norm(col, exp[col]) != _norm(col, got[key][col])]
    assert mismatches == []


@pytest.mark.parametrize("impl", ["floor", "pandas"])
def test_overrides_and_the_grace_period(bench, example_dir, tmp_path, impl):
    """metrics.md: an override sets the tier and ends the run below; later months start from it.
    K5 (raw C) is overridden to A in 2024-03: A override, then A held (2024-04, first month
    below), then C demoted (2024-05). K6 (raw C) is overridden to B in its first month; an
    override without approved_by has no effect."""
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    (inbox / "tier_overrides").mkdir()
    (inbox / "tier_overrides" / "part-0001.csv").write_text(
        "customer_id,eval_month,tier,reason,approved_by,updated_at\n"
        "K5,2024-03,A,strategic,王敏,2024-03-30T10:00:00+08:00\n"
        "K6,2024-03,B,new key account,王敏,2024-03-30T10:00:00+08:00\n"
        "K1,2024-02,C,not approved,,2024-03-30T10:00:00+08:00\n", encoding="utf-8")
    got = _table(bench, impl, inbox, "2024-06")

    def row(cid, month):
        r = got[(cid, month)]
        return r["raw_tier"], r["tier"], _norm("x", r["previous_tier"]), r["tier_change"]

    assert row("K5", "2024-03") == ("C", "A", "C", "override")
    assert row("K5", "2024-04") == ("C", "A", "A", "held")
    assert row("K5", "2024-05") == ("C", "C", "A", "demoted")
    assert row("K6", "2024-03") == ("C", "B", None, "override")
    assert row("K6", "2024-04") == ("C", "B", "B", "held")
    assert row("K6", "2024-05") == ("C", "C", "B", "demoted")
    assert row("K1", "2024-02") == ("A", "A", "A", "unchanged")  # no approved_by: no effect


def test_generator_is_deterministic_and_complete(bench, tmp_path):
    counts = bench.generate(tmp_path / "a", "S", "parquet", seed=7, log=lambda *_: None)
    again = bench.generate(tmp_path / "b", "S", "parquet", seed=7, log=lambda *_: None)
    assert counts == again
    assert set(counts) == set(bench.FEED_COLUMNS) and all(counts.values())
    assert counts["orders"] == bench.SCALES["S"][1]
    for feed in counts:
        a = (tmp_path / "a" / feed / "part-0001.parquet").read_bytes()
        assert a == (tmp_path / "b" / feed / "part-0001.parquet").read_bytes(), feed


def test_benchmark_at_scale_s_end_to_end(tmp_path):
    """The whole benchmark at S: the three tier tables agree (also after the daily increment)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--scale", "S", "--json", str(out),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    for key in ("scale", "pipeline_s", "floor_duckdb_s", "pandas_s", "incremental_s", "peak_rss_mb", "stages"):
        assert key in figures, key
    assert figures["scale"] == "S"
    assert figures["tables_agree"] is True and figures["tables_agree_after_increment"] is True
    assert set(figures["stages"]) >= {"ingest", "dbt_build", "checks", "publish"}
    assert all(figures[k] > 0 for k in ("pipeline_s", "floor_duckdb_s", "pandas_s", "incremental_s", "peak_rss_mb"))
    assert figures["tier_rows"]["pipeline"] == figures["tier_rows"]["floor"] == figures["tier_rows"]["pandas"] > 0
    assert "floor = pandas = pipeline" in proc.stdout
    # a third run with no new file ingests and stops: no dbt build, no checks, no publish
    rerun = figures["rerun_nothing_new_stages"]
    assert figures["rerun_nothing_new_s"] > 0 and rerun["ingest"] > 0
    assert rerun["dbt_build"] == rerun["checks"] == rerun["publish"] == 0
