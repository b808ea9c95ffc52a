"""
### ingest — daily: inbox files into the warehouse's raw layer

Takes every new file of every feed in the inbox (`keyaccounts_inbox` Variable or the run's
`inbox` param), checks rows against the inbound contract, loads good rows into `raw.*`,
quarantines bad ones with a reason, records the manifest. Emits an asset event for each feed
that loaded rows (through the alias `keyaccounts.raw`; none on a day without new data), which
triggers `transform`. Fails without retry when a feed's reject threshold is exceeded.
"""

from airflow.sdk import dag

from keyaccounts import orchestration as ka


@dag(
    dag_id="ingest",
    schedule=ka.daily_timetable(),
    doc_md=__doc__,
    **ka.dag_args("ingest"),
)
def ingest():
    ka.ingest_task(ka.settings_task())


ingest()
