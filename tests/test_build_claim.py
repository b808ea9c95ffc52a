"""A publish takes only the build its own run claimed and checked (transform.build_claim).

In Airflow the pool of one slot serialises tasks, not DAG runs: a `transform` run triggered by a late
file can rebuild models between a `monthly_tiers` run's checks and its publish. This test plays that
order with the same task functions the DAGs call (real dbt builds, real checks) on the worked example:
the monthly run's publish and its remaining dbt tasks must stop, and nothing unchecked reaches `marts`."""

from __future__ import annotations

import shutil

import pytest

from conftest import rows
from keyaccounts.config import RunConfig
from keyaccounts.errors import BuildReplaced
from keyaccounts.pipeline import check_task, dbt_vars_for, ingest_task, publish_task, transform_task
from keyaccounts.transform.dbt import run_dbt

# an order of K5 that would make it an A customer in 2024-06, arriving after the monthly run's checks
LATE_ORDER = ("order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,"
              "updated_at\nO-K5-LATE,K5,,2024-06-20,completed,CNY,9000000,9000000,,2024-07-01T09:00:00+08:00\n")


def test_a_publish_never_takes_a_build_another_run_replaced(example_dir, tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    wh = tmp_path / "wh.duckdb"
    cfg = RunConfig(inbox=inbox, warehouse=wh, through="2024-06")
    monthly, transform = "scheduled__2024-07-01", "asset_triggered__2024-07-01"

    ingest_task(cfg, monthly)
    transform_task(cfg, owner=monthly)
    check_task(cfg, owner=monthly)
    # the late file is ingested and `transform` rebuilds the marts, unchecked as yet
    (inbox / "orders" / "part-0099.csv").write_text(LATE_ORDER, encoding="utf-8")
    ingest_task(cfg, transform)
    transform_task(cfg, owner=transform)

    with pytest.raises(BuildReplaced, match=f"rebuilt by another run \\({transform}\\)"):
        publish_task(cfg, monthly, owner=monthly)
    # a dbt task of the monthly run that comes after the other run's claim stops before writing a model
    with pytest.raises(BuildReplaced, match=f"rebuilt by another run \\({transform}\\), not by {monthly}"):
        run_dbt("build", wh, cfg.dbt_state_dir, dbt_vars_for(cfg), extra=["--select", "tier_summary_monthly"],
                owner=monthly)
    # the transform run's own build is not published before its checks either
    with pytest.raises(BuildReplaced, match="not checked"):
        publish_task(cfg, transform, owner=transform)
    assert rows(wh, "select table_name from information_schema.tables where table_schema = 'marts'") == []

    # checked, it publishes: with the late order K5 passes K1 (V 1,656,000.00): rank 1, promoted to A
    check_task(cfg, owner=transform)
    publish_task(cfg, transform, owner=transform)
    k5 = rows(wh, "select tier, value_rank from marts.published_tiers where customer_id = 'K5'")
    assert k5 == [{"tier": "A", "value_rank": 1}]
