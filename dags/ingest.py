"""
### ingest — daily: inbox files into the warehouse's raw layer

Takes every new file of every feed in the inbox (`keyaccounts_inbox` Variable or the run's
`inbox` param), checks rows against the inbound contract, loads good rows into `raw.*`,
quarantines bad ones with a reason, records the manifest. Emits one asset per feed, which
triggers `transform`. Fails without retry when a feed's reject threshold is exceeded.
"""

from airflow.sdk import dag, get_current_context, task

from keyaccounts import orchestration as ka


@dag(
    dag_id="ingest",
    schedule=ka.daily_timetable(),
    start_date=ka.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=ka.DEFAULT_ARGS,
    tags=[*ka.TAGS, "ingest"],
    doc_md=__doc__,
    params=ka.params(),
)
def ingest():
    @task
    def settings() -> dict:
        context = get_current_context()
        return ka.resolve_settings(context["params"], ka.run_date(context))

    @task(pool=ka.DUCKDB_POOL, outlets=ka.feed_assets())
    def load_inbox(run_settings: dict) -> dict:
        return ka.ingest(run_settings, get_current_context()["run_id"])

    load_inbox(settings())


ingest()
