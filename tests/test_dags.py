"""The Airflow DAGs: policy (wiring only, owner, tags, retries, docs, time zone, fast parse
that does not touch the warehouse) and real runs with `airflow dags test` on the worked
example, including two monthly runs (a backfill) equal to `keyaccounts run --through`."""

from __future__ import annotations

import ast
import csv
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import rows, run

# a slow or busy CI host: the first test also pays for the module's shared runs (the module's DAG runs (one dbt invocation per model) come first)
pytestmark = pytest.mark.timeout(2400)
ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
MARTS = ["customer_tier_monthly", "customer_value_monthly", "customer_sales_monthly", "customer_receivables_monthly",
         "customer_loyalty_monthly", "tier_migration_monthly", "tier_summary_monthly", "dim_customer",
         "receivables_exceptions"]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """A fresh Airflow home (SQLite metadata), the pool, and a manifest of the current models."""
    from keyaccounts import airflow_local as af
    from keyaccounts.transform.manifest import generate_manifest

    root = tmp_path_factory.mktemp("airflow")
    manifest = generate_manifest(root / "manifest")
    env = af.airflow_env(root / "home", {"KEYACCOUNTS_DBT_MANIFEST": str(manifest)})
    log = root / "airflow.log"
    af._airflow(["db", "migrate"], env, log)
    af._airflow(["pools", "set", af.DUCKDB_POOL, "1", "one writer"], env, log)
    return env, log, root


def dags_test(airflow, dag_id, logical_date, conf) -> subprocess.CompletedProcess:
    env, _, _ = airflow
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, logical_date, "-c", json.dumps(conf)],
        env=env, capture_output=True, text=True, timeout=900,
    )


# ----------------------------------------------------------------------------- policy


def test_dag_files_hold_wiring_only():
    """DAG files import only the Airflow SDK and keyaccounts.orchestration, and hold no SQL."""
    for path in DAG_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert modules <= {"airflow.sdk", "keyaccounts"}, (path.name, modules)
        strings = [n.value.lower() for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert not any("select " in s or "insert " in s for s in strings), path.name
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            # a task body is one call into keyaccounts.orchestration (plus reading the context)
            assert len(fn.body) <= 6, (path.name, fn.name)


@pytest.fixture(scope="module")
def dagbag_report(tmp_path_factory):
    """Parse the DAG folder in a clean process with a warehouse path that must stay untouched."""
    tmp = tmp_path_factory.mktemp("parse")
    script = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()},
       "stats": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
       "duckdb_imported": "duckdb" in sys.modules,
       "dbt_imported": sorted(m for m in sys.modules if m == "dbt" or m.startswith("dbt.")), "dags": {}}
for dag_id, dag in bag.dags.items():
    tt = dag.timetable
    out["dags"][dag_id] = {
        "owner": dag.owner, "tags": sorted(dag.tags), "doc_md": dag.doc_md or "",
        "retries": {t.task_id: t.retries for t in dag.tasks}, "tasks": len(dag.tasks),
        "default_retries": dag.default_args.get("retries", 0),
        "timezone": str(getattr(tt, "_timezone", None) or dag.start_date.tzinfo),
        "start_tz": str(getattr(dag.timezone, "name", dag.timezone)), "timetable": type(tt).__name__,
        "pools": sorted({t.pool for t in dag.tasks}),
    }
print(json.dumps(out))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "KEYACCOUNTS_WAREHOUSE": str(tmp / "must-not-exist.duckdb"), "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False"}
    proc = subprocess.run([sys.executable, "-c", script, str(ROOT / "dags")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["warehouse_created"] = (tmp / "must-not-exist.duckdb").exists()
    return report


def test_dags_import_without_errors(dagbag_report):
    assert dagbag_report["errors"] == {}
    assert set(dagbag_report["dags"]) == {"ingest", "transform", "monthly_tiers"}


def test_dag_policy(dagbag_report):
    for dag_id, d in dagbag_report["dags"].items():
        assert d["owner"] == "keyaccounts", dag_id
        assert "keyaccounts" in d["tags"], dag_id
        assert d["doc_md"].strip(), dag_id
        assert d["default_retries"] >= 1, dag_id
        # our own tasks retry transient failures; dbt tasks (bad data / rules) do not
        assert all(r >= 1 for t, r in d["retries"].items() if not t.startswith("dbt.")), dag_id
        # dbt tasks retry too, but only a lock or a connection fault (orchestration._retry_dbt_only_when_transient)
        assert all(r >= 1 for t, r in d["retries"].items() if t.startswith("dbt.")), dag_id
        assert d["start_tz"] == "Asia/Shanghai", dag_id
    assert dagbag_report["dags"]["ingest"]["timezone"] == "Asia/Shanghai"
    assert dagbag_report["dags"]["monthly_tiers"]["timezone"] == "Asia/Shanghai"
    assert dagbag_report["dags"]["monthly_tiers"]["timetable"] == "CronTriggerTimetable"
    # the dbt project is rendered as tasks (Cosmos) and every warehouse writer is in the pool of one
    assert dagbag_report["dags"]["transform"]["tasks"] > 20
    # (settings too: it opens the warehouse for the last published month)
    assert all(d["pools"] == ["keyaccounts_duckdb"] for d in dagbag_report["dags"].values())


def test_dags_parse_fast_without_touching_the_warehouse(dagbag_report):
    """Parsing is fast by construction (no timing here: that is the benchmark's job): Cosmos
    renders the dbt project from the manifest without loading dbt, and nothing opens the
    warehouse or even imports DuckDB."""
    assert dagbag_report["dbt_imported"] == []
    assert not dagbag_report["warehouse_created"]
    assert not dagbag_report["duckdb_imported"]


def test_a_dbt_task_retries_a_held_or_unreachable_warehouse_and_nothing_else():
    """operations.md: each DAG retries transient failures. A dbt task's failure is retried (Airflow's
    retries) when the warehouse was held by another process or could not be reached; a failed model
    or test fails at once (AirflowFailException), since it would fail the same way again."""
    from airflow.sdk.exceptions import AirflowFailException
    from cosmos.dbt import runner
    from cosmos.exceptions import CosmosDbtRunError
    from dbt.cli.main import dbtRunnerResult

    from keyaccounts import orchestration as ka

    ka._retry_dbt_only_when_transient()  # dbt_task_group installs it as the DAG files are parsed
    transient = [
        'IO Error: Could not set lock on file "/srv/wh.duckdb": Conflicting lock is held in python (PID 42)',
        'connection to server at "10.0.0.5", port 5432 failed: Connection refused',
        "FATAL:  the database system is starting up",
    ]
    for message in transient:
        with pytest.raises(CosmosDbtRunError) as raised:
            runner.handle_exception_if_needed(dbtRunnerResult(success=False, exception=RuntimeError(message)))
        assert not isinstance(raised.value, AirflowFailException), message
    for message in ["Runtime Error in model stg_orders: Catalog Error: Table with name orders does not exist!",
                    "Got 3 results, configured to fail if != 0"]:
        with pytest.raises(AirflowFailException):
            runner.handle_exception_if_needed(dbtRunnerResult(success=False, exception=RuntimeError(message)))
    runner.handle_exception_if_needed(dbtRunnerResult(success=True))  # a success raises nothing
    ka._retry_dbt_only_when_transient()  # installed once: a second call does not wrap it twice
    with pytest.raises(AirflowFailException) as once:
        runner.handle_exception_if_needed(dbtRunnerResult(success=False, exception=RuntimeError("bad model")))
    assert not isinstance(once.value.__cause__, AirflowFailException)


def test_a_month_before_the_data_or_before_any_ingest_is_one_clear_line(example_dir, tmp_path):
    """operations.md: a DAG can be backfilled over any range. A monthly run for a month before the data
    fails at claim_build with the CLI's line (exit 3's "nothing to evaluate"), without retries, instead
    of a failed row-count check after a whole build; so does a run on a warehouse never ingested."""
    from datetime import datetime, timezone

    from airflow.sdk.exceptions import AirflowFailException

    from keyaccounts import orchestration as ka

    params = {"inbox": str(example_dir / "inbox"), "warehouse": str(tmp_path / "wh.duckdb")}
    early = ka.resolve_settings({**params, "month": "2022-06"}, datetime(2022, 7, 1, tzinfo=timezone.utc), "bf1")
    with pytest.raises(AirflowFailException, match="nothing has been ingested into .* run the ingest DAG first"):
        ka.claim(early)
    ka.ingest(early, "bf1")
    with pytest.raises(AirflowFailException, match="nothing to evaluate through 2022-06: .* first month that can be "
                                                   "evaluated is 2023-01"):
        ka.claim(early)


def test_month_before_logical_date_in_business_time():
    from datetime import datetime, timezone

    from keyaccounts.orchestration import month_before

    # 2024-06-30T16:00Z is 2024-07-01 00:00 in Shanghai: the month that ended is June
    assert month_before(datetime(2024, 6, 30, 16, 0, tzinfo=timezone.utc)) == "2024-06"
    assert month_before(datetime(2024, 6, 30, 15, 59, tzinfo=timezone.utc)) == "2024-05"
    assert month_before(datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc)) == "2023-12"


def test_one_business_time_zone_for_the_schedules_and_the_models(tmp_path, monkeypatch, example_dir):
    """The DAGs' schedules run in KEYACCOUNTS_BUSINESS_TZ; the models take the same zone from it, and a
    run whose dbt var names another zone is refused in one line (its month would be the one that ended
    in the schedule's zone, judged in another)."""
    from datetime import datetime, timezone

    from keyaccounts import orchestration as ka
    from keyaccounts.config import RunConfig
    from keyaccounts.errors import InputError

    params = {"inbox": str(example_dir / "inbox"), "warehouse": str(tmp_path / "wh.duckdb")}
    first_of_june = datetime(2024, 5, 31, 19, 0, tzinfo=timezone.utc)  # 2024-06-01 03:00 in Shanghai
    monkeypatch.delenv("KEYACCOUNTS_BUSINESS_TZ", raising=False)
    monkeypatch.setattr(ka, "BUSINESS_TZ", "Asia/Shanghai")
    assert ka.resolve_settings(params, first_of_june)["through"] == "2024-05"
    with pytest.raises(InputError, match="Los_Angeles in the Airflow environment"):
        ka.resolve_settings({**params, "dbt_vars": {"business_time_zone": "America/Los_Angeles"}}, first_of_june)
    # the environment variable sets both
    monkeypatch.setenv("KEYACCOUNTS_BUSINESS_TZ", "America/Los_Angeles")
    monkeypatch.setattr(ka, "BUSINESS_TZ", "America/Los_Angeles")
    settings = ka.resolve_settings(params, first_of_june)
    assert settings["through"] == "2024-04"  # 2024-05-31 12:00 in Los Angeles: May has not ended
    assert json.loads(settings["dbt_vars_json"])["business_time_zone"] == "America/Los_Angeles"
    cli = RunConfig(inbox=example_dir / "inbox", warehouse=tmp_path / "wh.duckdb", through="2024-05")
    assert cli.dbt_vars == {"business_time_zone": "America/Los_Angeles"}
    monkeypatch.setenv("KEYACCOUNTS_BUSINESS_TZ", "UTC+8")
    with pytest.raises(InputError, match="IANA"):
        RunConfig(inbox=example_dir / "inbox", warehouse=tmp_path / "wh.duckdb", through="2024-05")


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def example_runs(airflow, example_dir, tmp_path_factory):
    """ingest -> transform -> monthly_tiers for 2024-05, then monthly_tiers for 2024-06."""
    wh = tmp_path_factory.mktemp("af-example") / "wh.duckdb"
    conf = {"inbox": str(example_dir / "inbox"), "warehouse": str(wh)}
    results = {}
    for key, dag_id, date in [
        ("ingest", "ingest", "2024-06-01T00:00:00+08:00"),
        ("transform", "transform", "2024-06-01T00:00:00+08:00"),
        ("monthly_05", "monthly_tiers", "2024-06-01T00:00:00+08:00"),
        ("monthly_06", "monthly_tiers", "2024-07-01T00:00:00+08:00"),
        ("ingest_again", "ingest", "2024-06-01T00:00:00+08:00"),
    ]:
        results[key] = dags_test(airflow, dag_id, date, conf)
    return wh, results


def test_each_dag_run_succeeds(example_runs):
    _, results = example_runs
    for key, proc in results.items():
        assert proc.returncode == 0, (key, proc.stdout[-3000:], proc.stderr[-3000:])


def test_airflow_runs_reproduce_the_worked_example(example_runs, example_dir):
    wh, _ = example_runs
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    got = {(r["customer_id"], r["eval_month"]): r for r in rows(wh, "select * from marts.customer_tier_monthly")}
    assert len(got) == len(expected)
    for e in expected:
        g = got[(e["customer_id"], e["eval_month"])]
        assert (g["tier"], g["raw_tier"], g["tier_change"]) == (e["tier"], e["raw_tier"], e["tier_change"])
        assert g["value_score"] == Decimal(e["value_score"])


def test_monthly_backfill_equals_keyaccounts_run(example_runs, example_dir, tmp_path):
    wh, _ = example_runs
    reference = tmp_path / "cli.duckdb"
    run(example_dir / "inbox", reference, "2024-06")
    for table in MARTS:
        ordered = f"select * from marts.{table} order by all"
        assert rows(wh, ordered) == rows(reference, ordered), table
    published = [r["eval_month"] for r in rows(wh, "select eval_month from audit.publish_log order by 1")]
    assert published == ["2024-05", "2024-06"]
    exports = wh.parent / "exports"
    assert (exports / "tiers_2024-05.csv").exists() and (exports / "tiers_2024-06.parquet").exists()


def test_ingest_rerun_takes_nothing_new(airflow, example_runs):
    wh, _ = example_runs
    runs = rows(wh, "select run_id, sum(files_taken) as taken, sum(files_skipped) as skipped "
                    "from audit.ingest_runs group by run_id order by min(finished_at)")
    assert [(r["taken"], r["skipped"]) for r in runs] == [(7, 0), (0, 7)]
    # asset events (which trigger `transform`) only for the feeds that loaded rows: one per feed of
    # the example's inbox in the first ingest, none in the second
    _, _, root = airflow
    with sqlite3.connect(root / "home" / "airflow.db") as db:
        events = db.execute("select e.source_run_id, a.name from asset_event as e join asset as a on a.id = e.asset_id "
                            "where e.source_dag_id = 'ingest' order by e.id").fetchall()
    assert len({run for run, _ in events}) == 1
    assert sorted(name for _, name in events) == [f"keyaccounts.raw.{feed}" for feed in (
        "customers", "fx_rates", "invoices", "orders", "payments", "survey_responses")]


def test_failed_build_publishes_nothing(airflow, example_runs):
    """A month whose dbt build fails leaves the last publish in place and fails the run."""
    import duckdb

    wh, _ = example_runs
    before = rows(wh, "select * from audit.publish_log order by all")
    # a raw feed a staging model cannot find fails the build in dbt (a var cannot: every var is checked
    # before the run starts; nor can raw.orders, which claim_build checks first)
    with duckdb.connect(str(wh)) as conn:
        conn.execute("alter table raw.invoices rename to invoices_away")
    try:
        proc = dags_test(airflow, "monthly_tiers", "2024-08-01T00:00:00+08:00", {"warehouse": str(wh)})
    finally:
        with duckdb.connect(str(wh)) as conn:
            conn.execute("alter table raw.invoices_away rename to invoices")
    assert proc.returncode != 0
    assert "stg_invoices" in proc.stdout + proc.stderr
    assert rows(wh, "select * from audit.publish_log order by all") == before
    assert not (wh.parent / "exports" / "tiers_2024-07.csv").exists()
