"""The build's own checks of the tier marts (dbt_project/tests/tier_rules): a mart that breaks a rule of
metrics.md fails the build, so nothing is published. Each check is shown to pass on a good build and to
fail on a copy of it with one rule broken by hand."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from keyaccounts.config import RunConfig
from keyaccounts.errors import BuildFailed
from keyaccounts.pipeline import dbt_vars_for, ingest_task, transform_task
from keyaccounts.transform.dbt import run_dbt

CHECKS = ["tier_ranks_follow_value_score", "tier_changes_follow_the_grace_rule",
          "tier_migration_counts_the_tier_table", "value_marts_agree"]
# one broken rule per check, on the example's build through 2024-06
BROKEN = {
    "tier_ranks_follow_value_score":  # two customers ranked 1
        "update marts_build.customer_tier_monthly set value_rank = 1 where value_rank = 2",
    "tier_changes_follow_the_grace_rule":  # previous_tier is not last month's tier
        "update marts_build.customer_tier_monthly set previous_tier = 'C' where previous_tier = 'A'",
    "tier_migration_counts_the_tier_table":  # one transition counted twice
        "update marts_build.tier_migration_monthly set customers = customers + 1 "
        "where rowid = (select min(rowid) from marts_build.tier_migration_monthly where customers > 0)",
    "value_marts_agree":  # the value mart no longer matches the tier table
        "update marts_build.customer_value_monthly set value_score = value_score * 2 where value_score > 0",
}


@pytest.fixture(scope="module")
def built(example_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    cfg = RunConfig(inbox=example_dir / "inbox", warehouse=root / "good" / "warehouse.duckdb", through="2024-06")
    ingest_task(cfg, "run-1")
    transform_task(cfg)
    return cfg, root


def test_a_good_build_passes_the_tier_checks(built):
    cfg, _ = built
    run_dbt("test", cfg.warehouse, cfg.dbt_state_dir, dbt_vars_for(cfg), extra=["--select", *CHECKS])


@pytest.mark.parametrize("check", CHECKS)
def test_a_mart_that_breaks_a_rule_fails_its_check(built, check):
    cfg, root = built
    copy = root / check / "warehouse.duckdb"
    copy.parent.mkdir()
    shutil.copy(cfg.warehouse, copy)
    with duckdb.connect(str(copy)) as conn:
        assert conn.execute(BROKEN[check]).fetchone()[0] > 0  # rows changed
    broken = RunConfig(inbox=cfg.inbox, warehouse=copy, through="2024-06")
    with pytest.raises(BuildFailed, match=check):  # this check alone: a broken rule may break others too
        run_dbt("test", copy, broken.dbt_state_dir, dbt_vars_for(broken), extra=["--select", check])
