"""A daily run that finds nothing new costs its ingest, not a rebuild (operations.md: daily runs
cost in proportion to the new data): `keyaccounts run` skips the build, the checks and the
publish when the last completed run published the same month from the same loaded files,
settings and code, and its files are all in place. Anything else rebuilds: a new file, another
dbt var, a deleted export, another publish (an Airflow DAG run) in between."""

from __future__ import annotations

import shutil
from decimal import Decimal as D

import pytest

from conftest import one, rows, run, write_inbox
from keyaccounts.config import RunConfig
from keyaccounts.pipeline import check_task, held_back_task, publish_task, transform_task

THROUGH = "2024-06"
TS = "2024-07-05T08:00:00+08:00"


def dbt_build_stamp(wh) -> int:
    """When dbt last finished a command on this warehouse (it writes run_results.json each time)."""
    results = wh.parent / ".dbt" / wh.stem / "target" / "run_results.json"
    return results.stat().st_mtime_ns if results.exists() else 0


def publishes(wh) -> list[tuple[str, str]]:
    return [(r["eval_month"], r["action"]) for r in
            rows(wh, "select eval_month, action from audit.publish_log order by published_at")]


@pytest.fixture(scope="module")
def scenario(example_dir, tmp_path_factory):
    """The worked example through 2024-06, then reruns; each step's result and state."""
    tmp = tmp_path_factory.mktemp("up-to-date")
    inbox, wh = tmp / "inbox", tmp / "wh" / "warehouse.duckdb"
    shutil.copytree(example_dir / "inbox", inbox)
    steps = {}

    def step(name, **kwargs):
        stamp = dbt_build_stamp(wh)
        result = run(inbox, wh, THROUGH, **kwargs)
        steps[name] = {"result": result, "dbt_ran": dbt_build_stamp(wh) != stamp, "publishes": publishes(wh)}

    step("first")
    step("again")
    (wh.parent / "exports" / f"report_{THROUGH}.html").unlink()
    step("export_deleted")
    step("other_var", dbt_vars={"grace_months": 2})
    step("other_var_again", dbt_vars={"grace_months": 2})
    # a late delivery: K6 gets a completed order of 2,000,000 in June 2024
    write_inbox(inbox, {"orders/part-0099.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-K6-LATE,K6,,2024-06-20,completed,CNY,2000000,2000000,,{TS}
    """})
    before = one(wh, "select revenue_12m from marts.customer_sales_monthly "
                     "where customer_id = 'K6' and eval_month = '2024-06'")["revenue_12m"]
    step("new_file", dbt_vars={"grace_months": 2})
    return {"wh": wh, "inbox": inbox, "steps": steps, "k6_revenue_before": before}


def test_a_rerun_with_nothing_new_builds_and_publishes_nothing(scenario):
    first, again = scenario["steps"]["first"], scenario["steps"]["again"]
    assert first["result"].up_to_date_with is None and first["dbt_ran"]
    assert again["result"].up_to_date_with is not None
    assert again["result"].up_to_date_with.run_id == first["result"].run_id
    assert not again["dbt_ran"]
    assert again["publishes"] == first["publishes"] == [(THROUGH, "published")]  # no publish logged
    # the same files are reported, and they are there
    assert again["result"].exports == first["result"].exports
    assert all(p.exists() for p in again["result"].exports)
    # the ingest still ran (it found nothing new)
    taken = rows(scenario["wh"], "select run_id, sum(files_taken) as n from audit.ingest_runs group by run_id")
    assert {r["run_id"]: r["n"] for r in taken}[again["result"].run_id] == 0


def test_a_deleted_export_is_written_again(scenario):
    s = scenario["steps"]["export_deleted"]
    assert s["result"].up_to_date_with is None and s["dbt_ran"]
    assert (scenario["wh"].parent / "exports" / f"report_{THROUGH}.html").exists()
    assert s["publishes"][-1] == (THROUGH, "unchanged")


def test_other_settings_rebuild_and_then_are_up_to_date(scenario):
    steps = scenario["steps"]
    assert steps["other_var"]["result"].up_to_date_with is None and steps["other_var"]["dbt_ran"]
    assert steps["other_var_again"]["result"].up_to_date_with is not None
    assert not steps["other_var_again"]["dbt_ran"]


def test_a_new_file_rebuilds(scenario):
    s = scenario["steps"]["new_file"]
    assert s["result"].up_to_date_with is None and s["dbt_ran"]
    after = one(scenario["wh"], "select revenue_12m from marts.customer_sales_monthly "
                                "where customer_id = 'K6' and eval_month = '2024-06'")["revenue_12m"]
    assert D(after) - D(scenario["k6_revenue_before"]) == D("2000000")


def test_another_publish_in_between_clears_the_reference(scenario):
    """A publish outside `keyaccounts run` (the Airflow DAGs call the task functions) may use other
    settings: the next run must not take the marts it left for its own."""
    wh, inbox = scenario["wh"], scenario["inbox"]
    assert one(wh, "select count(*) as n from audit.run_state")["n"] == 1
    cfg = RunConfig(inbox=inbox, warehouse=wh, through=THROUGH, dbt_vars={"grace_months": 3})
    transform_task(cfg)
    held_back_task(cfg)
    check_task(cfg)
    publish_task(cfg, "dag-run")
    assert one(wh, "select count(*) as n from audit.run_state")["n"] == 0
