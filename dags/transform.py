"""
### transform — after each ingest: build and test the dbt project

Runs when any feed's asset is updated by `ingest`. The dbt project is rendered by
astronomer-cosmos from its manifest (one `dbt build` task per model with its own tests; a
test of several models, such as the tier-rule checks, is a task after all of them), built into `marts_build` through the month that ended before the run (or the latest
published month, if later); the rows the build held back (a missing rate, ...) are listed in
`quarantine.<feed>`, then the Great Expectations suites check the build. Publishing is
`monthly_tiers`' job. DuckDB writers share a pool of one slot.
"""

from airflow.sdk import AssetAny, dag

from keyaccounts import orchestration as ka


@dag(
    dag_id="transform",
    schedule=AssetAny(*ka.feed_assets()),
    doc_md=__doc__,
    **ka.dag_args("transform", "dbt"),
)
def transform():
    run_settings = ka.settings_task()
    built = run_settings >> ka.claim_task(run_settings) >> ka.dbt_task_group() >> ka.held_back_task(run_settings)
    built >> ka.checks_task(run_settings)


transform()
