"""
### monthly_tiers — on the 1st of each month (business time zone): evaluate and publish

Evaluates the month that ended before the logical date (or the run's `month` param): builds
and tests the dbt project through it into `marts_build` (astronomer-cosmos), lists the rows
the build held back in `quarantine.<feed>`, runs the Great Expectations suites on the month,
then publishes: swaps the marts in, appends the month to
`marts.published_tiers`, writes exports and the BI copy. If a model, test or check fails,
nothing is published and the last publish stays in place; the failing task's log says why.
Backfill: `airflow backfill create --dag-id monthly_tiers --from-date 2024-02-01T00:00:00+08:00
--to-date 2024-07-01T03:00:00+08:00` (dates with the business zone's offset: README).
"""

from airflow.sdk import dag

from keyaccounts import orchestration as ka


@dag(
    dag_id="monthly_tiers",
    schedule=ka.monthly_timetable(),
    doc_md=__doc__,
    **ka.dag_args("tiers", "publish"),
)
def monthly_tiers():
    run_settings = ka.settings_task()
    built = run_settings >> ka.claim_task(run_settings) >> ka.dbt_task_group() >> ka.held_back_task(run_settings)
    built >> ka.checks_task(run_settings) >> ka.publish_task(run_settings)


monthly_tiers()
