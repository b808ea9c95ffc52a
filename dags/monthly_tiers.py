"""
### monthly_tiers — on the 1st of each month (business time zone): evaluate and publish

Evaluates the month that ended before the logical date (or the run's `month` param): builds
and tests the dbt project through it (astronomer-cosmos), then publishes the month's
exports and records the publish. If a model or test fails, nothing is published and the
last published month stays in place; the failing task's log says why.
Backfill: `airflow backfill create --dag-id monthly_tiers --from-date 2024-02-01 --to-date 2024-07-01`.
"""

from airflow.sdk import dag, get_current_context, task

from keyaccounts import orchestration as ka


@dag(
    dag_id="monthly_tiers",
    schedule=ka.monthly_timetable(),
    start_date=ka.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=ka.DEFAULT_ARGS,
    tags=[*ka.TAGS, "tiers", "publish"],
    doc_md=__doc__,
    params=ka.params(),
)
def monthly_tiers():
    @task
    def settings() -> dict:
        context = get_current_context()
        return ka.resolve_settings(context["params"], ka.run_date(context))

    @task(pool=ka.DUCKDB_POOL, outlets=[ka.marts_asset()])
    def publish(run_settings: dict) -> list[str]:
        return ka.publish(run_settings, get_current_context()["run_id"])

    run_settings = settings()
    run_settings >> ka.dbt_task_group() >> publish(run_settings)


monthly_tiers()
