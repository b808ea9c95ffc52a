"""How long the forecast models of issue 10 add (docs/forecasts.md "Cost"), at any scale.

    .venv/bin/python scripts/benchmark_forecast.py [--customers 200000] [--months 36] [--orders 20000000]
                                                   [--workdir .state/forecast-bench] [--no-regression] [--reuse]

It writes synthetic inputs of the size asked for straight into the tables the forecast models
read (intermediate.int_tier_assignment, int_eval_months, int_customer_months, int_orders_completed,
int_customer_first_orders, staging.stg_customers), then times, in child processes:
1. `dbt run` of the Markov models only (int_tier_transition_counts .. customer_tier_outlook);
2. with --vars potential_model: regression, `dbt run` of int_revenue_trends and the Python model
   int_potential_regression (skipped with --no-regression);
3. what publishing the four new marts costs: copying them into another schema (the swap) and
   writing them to a DuckDB file and Parquet files (the BI copy).
The tiers follow a sticky random chain and the revenue random orders: the figures depend on the
row counts, not on the values. Prints one line per step and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"
MARKOV = ["int_tier_transition_counts", "int_tier_transition_matrix", "int_tier_forecast", "tier_transition_matrix",
          "tier_forecast", "tier_forecast_backtest", "customer_tier_outlook"]
REGRESSION = ["int_revenue_trends", "int_potential_regression"]
NEW_MARTS = ["tier_transition_matrix", "tier_forecast", "tier_forecast_backtest", "customer_tier_outlook"]
THROUGH_IDX = 2026 * 12 + 9  # 2026-10


def synthesise(path: Path, customers: int, months: int, orders: int) -> None:
    first = THROUGH_IDX - months + 1
    with duckdb.connect(str(path)) as c:
        c.execute("set threads = 2")
        for schema in ("intermediate", "staging", "marts"):
            c.execute(f"create schema if not exists {schema}")
        c.execute(f"""create or replace table staging.stg_customers as
            select 'C' || lpad(cast(i as varchar), 7, '0') as customer_id,
                   ['technology', 'finance', 'manufacturing', 'energy', 'retail', 'logistics', 'healthcare',
                    'government', 'education'][cast(1 + i % 9 as bigint)] as industry,
                   ['global', 'national', 'local'][cast(1 + (i // 9) % 3 as bigint)] as scope,
                   'manager ' || cast(i % 50 as varchar) as account_manager
            from range({customers}) as t(i)""")
        c.execute(f"""create or replace table intermediate.int_eval_months as
            select cast(idx as integer) as month_idx,
                   make_date(cast(idx // 12 as integer), cast(idx % 12 + 1 as integer), 1) as month_start,
                   cast(make_date(cast(idx // 12 as integer), cast(idx % 12 + 1 as integer), 1)
                        + interval '1 month' - interval '1 day' as date) as month_end
            from range({first}, {THROUGH_IDX + 1}) as t(idx)""")
        c.execute("""create or replace table intermediate.int_customer_months as
            select c.customer_id, c.scope, m.month_idx, m.month_start as eval_month, m.month_end
            from staging.stg_customers as c cross join intermediate.int_eval_months as m""")
        # a sticky chain: a customer's base tier, and one month in ten somewhere else
        c.execute("""create or replace table intermediate.int_tier_assignment as
            with draws as (
                select customer_id, month_idx,
                       ['A', 'B', 'C'][cast(1 + hash(customer_id) % 3 as bigint)] as base,
                       ['A', 'B', 'C'][cast(1 + hash(customer_id, month_idx) % 3 as bigint)] as other,
                       hash(customer_id, month_idx, 'move') % 10 = 0 as moves,
                       hash(customer_id, month_idx, 'raw') % 4 = 0 as raw_differs
                from intermediate.int_customer_months)
            select customer_id, month_idx,
                   case when raw_differs then other else (case when moves then other else base end) end as raw_tier,
                   case when moves then other else base end as tier,
                   lag(case when moves then other else base end) over (partition by customer_id order by month_idx)
                       as previous_tier,
                   'unchanged' as tier_change, 0 as months_below
            from draws""")
        c.execute(f"""create or replace table intermediate.int_orders_completed as
            select 'O' || cast(i as varchar) as order_id,
                   'C' || lpad(cast(hash(i) % {customers} as varchar), 7, '0') as customer_id,
                   cast(null as varchar) as contract_id,
                   cast(make_date(cast(idx // 12 as integer), cast(idx % 12 + 1 as integer), 15) as date)
                       as order_date,
                   cast(idx as integer) as month_idx,
                   cast(1000 + hash(i, 'amount') % 100000 as decimal(38, 16)) as net_amount_reporting,
                   cast(1000 + hash(i, 'amount') % 100000 as decimal(38, 16)) as list_amount_reporting,
                   cast(null as decimal(38, 16)) as cost_amount_reporting
            from (select i, {first} + hash(i, 'month') % {months} as idx from range({orders}) as t(i))""")
        c.execute("""create or replace table intermediate.int_customer_first_orders as
            select customer_id, min(order_date) as first_order_date
            from intermediate.int_orders_completed group by customer_id""")


def dbt_run(warehouse: Path, models: list[str], dbt_vars: dict, state: Path) -> dict[str, float]:
    env = {**os.environ, "KEYACCOUNTS_DBT_TARGET": "duckdb", "KEYACCOUNTS_WAREHOUSE": str(warehouse.resolve()),
           "DBT_TARGET_PATH": str(state / "target"), "DBT_LOG_PATH": str(state / "logs"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    cmd = [str(Path(sys.executable).parent / "dbt"), "run", "--project-dir", str(DBT_PROJECT), "--profiles-dir",
           str(DBT_PROJECT), "--quiet", "--threads", "1", "--select", *models, "--vars", json.dumps(dbt_vars)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"dbt run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = json.loads((state / "target" / "run_results.json").read_text())["results"]
    times = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}
    times["_wall_incl_dbt_startup"] = wall
    return times


def publish_cost(warehouse: Path, workdir: Path) -> dict[str, float]:
    out = {}
    with duckdb.connect(str(warehouse)) as c:
        c.execute("set threads = 2")
        c.execute("create schema if not exists marts_copy")
        started = time.perf_counter()
        for t in NEW_MARTS:
            c.execute(f"create or replace table marts_copy.{t} as select * from marts.{t}")
        out["swap_copy"] = time.perf_counter() - started
        copy_db = workdir / "bi_copy.duckdb"
        copy_db.unlink(missing_ok=True)
        with duckdb.connect(str(copy_db)) as bi:  # the file itself is there anyway: not timed
            bi.execute("create table main.opened as select 1 as x")
            bi.execute("checkpoint")
            started = time.perf_counter()
            for t in NEW_MARTS:
                bi.register("incoming", c.execute(f"select * from marts.{t}").fetch_record_batch(100_000))
                bi.execute(f"create table main.{t} as select * from incoming")
                bi.unregister("incoming")
            bi.execute("checkpoint")
            out["bi_copy_duckdb"] = time.perf_counter() - started
        import pyarrow.parquet as pq

        started = time.perf_counter()
        for t in NEW_MARTS:
            reader = c.execute(f"select * from marts.{t}").fetch_record_batch(100_000)
            with pq.ParquetWriter(workdir / f"{t}.parquet", reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        out["bi_copy_parquet"] = time.perf_counter() - started
        out["rows"] = {t: c.execute(f"select count(*) from marts.{t}").fetchone()[0] for t in NEW_MARTS}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--orders", type=int, default=20_000_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".state" / "forecast-bench")
    parser.add_argument("--no-regression", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the synthetic inputs of an earlier run (same sizes)")
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    warehouse = args.workdir / "synthetic.duckdb"
    if not (args.reuse and warehouse.exists()):
        warehouse.unlink(missing_ok=True)
        started = time.perf_counter()
        synthesise(warehouse, args.customers, args.months, args.orders)
        print(f"synthetic inputs: {args.customers:,} customers x {args.months} months, {args.orders:,} orders "
              f"({time.perf_counter() - started:.1f} s)")
    through = f"{THROUGH_IDX // 12}-{THROUGH_IDX % 12 + 1:02d}"
    summary = {"customers": args.customers, "months": args.months, "orders": args.orders}
    summary["markov"] = dbt_run(warehouse, MARKOV, {"through_month": through}, args.workdir / "dbt-markov")
    for name, seconds in summary["markov"].items():
        print(f"  markov   {name:<32} {seconds:7.2f} s")
    summary["publish"] = publish_cost(warehouse, args.workdir)
    for name, value in summary["publish"].items():
        print(f"  publish  {name:<32} {value if isinstance(value, dict) else f'{value:7.2f} s'}")
    if not args.no_regression:
        summary["regression"] = dbt_run(warehouse, REGRESSION, {"through_month": through,
                                                                "potential_model": "regression"},
                                        args.workdir / "dbt-regression")
        for name, seconds in summary["regression"].items():
            print(f"  regression {name:<30} {seconds:7.2f} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
