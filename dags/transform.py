"""
### transform — after each ingest: build and test the dbt project

Runs when any feed's asset is updated by `ingest`. The dbt project is rendered by
astronomer-cosmos from its manifest (one `dbt build` task per model, its tests included),
built through the month that ended before the run (or the latest published month, if
later). DuckDB writers share a pool of one slot.
"""

from airflow.sdk import AssetAny, dag, get_current_context, task

from keyaccounts import orchestration as ka


@dag(
    dag_id="transform",
    schedule=AssetAny(*ka.feed_assets()),
    start_date=ka.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=ka.DEFAULT_ARGS,
    tags=[*ka.TAGS, "transform", "dbt"],
    doc_md=__doc__,
    params=ka.params(),
)
def transform():
    @task
    def settings() -> dict:
        context = get_current_context()
        return ka.resolve_settings(context["params"], ka.run_date(context))

    settings() >> ka.dbt_task_group()


transform()
