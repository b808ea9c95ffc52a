"""What the Airflow DAG files share: schedules, assets, settings resolution, the Cosmos task
group and the task callables. DAG files only wire these together; the task callables call
the same `keyaccounts.pipeline` functions as `keyaccounts run`. No business rule here.

Settings come, first found wins, from the run's params (`airflow dags trigger -c` /
`dags test -c`), Airflow Variables (`keyaccounts_inbox`, `keyaccounts_warehouse`,
`keyaccounts_exports`, `keyaccounts_reject_threshold`), the environment
(`KEYACCOUNTS_INBOX`, `KEYACCOUNTS_WAREHOUSE`, `KEYACCOUNTS_EXPORTS`) and finally defaults
inside the project's state folder.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from keyaccounts.config import DBT_PROJECT_DIR, PG_TLS_ENV, STATE_DIR, TIME_ZONE_ENV, RunConfig, project_vars
from keyaccounts.errors import DUCKDB_FILE_LOCK, InputError
from keyaccounts.ingest.contract import FEEDS, REJECT_THRESHOLD

# the zone of the schedules; the models use the same one (config.business_time_zone_var)
BUSINESS_TZ = os.environ.get(TIME_ZONE_ENV) or str(project_vars()["business_time_zone"])
# DuckDB allows one writer: every task that writes the warehouse runs in this pool of 1 slot.
DUCKDB_POOL = os.environ.get("KEYACCOUNTS_DUCKDB_POOL", "keyaccounts_duckdb")
# the dbt target (profiles.yml output) the Cosmos tasks run: Cosmos fixes it when the DAGs are
# parsed, so a deployment on a PostgreSQL warehouse sets KEYACCOUNTS_DBT_TARGET=postgres
DBT_TARGET = os.environ.get("KEYACCOUNTS_DBT_TARGET", "duckdb")
DBT_ENV_NAMES = ("KEYACCOUNTS_DBT_TARGET", "KEYACCOUNTS_WAREHOUSE", "KEYACCOUNTS_PG_HOST", "KEYACCOUNTS_PG_PORT",
                 "KEYACCOUNTS_PG_USER", "KEYACCOUNTS_PG_DATABASE", "KEYACCOUNTS_BUILD_OWNER", *PG_TLS_ENV.values())
MANIFEST_PATH = Path(os.environ.get("KEYACCOUNTS_DBT_MANIFEST", STATE_DIR / "dbt" / "manifest" / "manifest.json"))
def _start_date():
    import pendulum  # Airflow keeps a pendulum start date's zone as the DAG's time zone

    return pendulum.datetime(2023, 1, 1, tz=BUSINESS_TZ)


START_DATE = _start_date()

DEFAULT_ARGS = {
    "owner": "keyaccounts",
    # transient failures (a locked warehouse, a full disk freed later) are retried with
    # back-off; bad data fails at once (AirflowFailException, see _run_task)
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
}
TAGS = ["keyaccounts"]


def feed_asset_name(feed: str) -> str:
    return f"keyaccounts.raw.{feed}"


def feed_asset(feed: str):
    from airflow.sdk import Asset

    return Asset(name=feed_asset_name(feed), uri=f"keyaccounts://raw/{feed}", group="keyaccounts")


def feed_assets() -> list:
    return [feed_asset(feed) for feed in FEEDS]


def raw_alias():
    """The ingest task's outlet: through it, an asset event is emitted only for the feeds that
    loaded rows, so a day without new data triggers no `transform` run."""
    from airflow.sdk import AssetAlias

    return AssetAlias(name="keyaccounts.raw", group="keyaccounts")


def changed_feeds(stats: dict) -> list[str]:
    """The feeds whose raw layer this ingest changed (rows loaded)."""
    return [feed for feed, s in stats.items() if s.get("rows_loaded")]


def marts_asset():
    from airflow.sdk import Asset

    return Asset(name="keyaccounts.marts", uri="keyaccounts://marts/published", group="keyaccounts")


def params() -> dict:
    from airflow.sdk import Param

    return {
        "inbox": Param("", type="string", description="inbox folder (empty: Variable keyaccounts_inbox / env)"),
        "warehouse": Param("", type="string", description="DuckDB file (empty: Variable keyaccounts_warehouse / env)"),
        "exports": Param("", type="string", description="exports folder (empty: <warehouse folder>/exports)"),
        "reject_threshold": Param(-1, type="number", description=f"share of bad rows that fails a run (-1: default {REJECT_THRESHOLD})"),
        "dbt_vars": Param({}, type="object", description="overrides of dbt_project.yml vars"),
        "month": Param("", type="string", description="evaluation month YYYY-MM (empty: from the logical date)"),
        "sql_conn_id": Param("", type="string",
                             description="Airflow connection of a SQL source (PostgreSQL, SQLite, any SQLAlchemy database) of orders, invoices, payments"),
        "sql_schema": Param("", type="string",
                            description="schema of the source tables (empty: public on PostgreSQL, else the database's own)"),
        "restate": Param(False, type="boolean", description="publish the month again as a new version"),
        "restate_reason": Param("", type="string", description="why (required with restate)"),
        "restated_by": Param("", type="string", description="who approved the restatement (required with restate)"),
    }


def daily_timetable():
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable("30 1 * * *", timezone=BUSINESS_TZ)


def monthly_timetable():
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable("0 3 1 * *", timezone=BUSINESS_TZ)


def month_before(logical_date: datetime) -> str:
    """The month that ended before the logical date, in the business time zone."""
    local = logical_date.astimezone(ZoneInfo(BUSINESS_TZ))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(name, default=None)
    except Exception:  # no metadata DB reachable (e.g. a unit test): fall through to env
        return None


def resolve_settings(params: dict, logical_date: datetime, owner: str | None = None) -> dict:
    """Everything a run needs, as a JSON-able dict (it travels by XCom to the dbt tasks)."""
    def pick(param: str, variable: str, env: str, default: str) -> str:
        return str(params.get(param) or _variable(variable) or os.environ.get(env) or default)

    from keyaccounts.warehouse import is_postgres  # not at parse time: it imports DuckDB

    base = STATE_DIR / "airflow"
    warehouse = pick("warehouse", "keyaccounts_warehouse", "KEYACCOUNTS_WAREHOUSE", str(base / "warehouse.duckdb"))
    threshold = params.get("reject_threshold")
    if threshold is None or float(threshold) < 0:
        threshold = float(_variable("keyaccounts_reject_threshold") or REJECT_THRESHOLD)
    if is_postgres(warehouse) and DBT_TARGET != "postgres":
        raise InputError("a PostgreSQL warehouse needs KEYACCOUNTS_DBT_TARGET=postgres in the Airflow "
                                   "environment (the dbt target is fixed when the DAGs are parsed)")
    cfg = RunConfig(
        inbox=Path(pick("inbox", "keyaccounts_inbox", "KEYACCOUNTS_INBOX", str(base / "inbox"))),
        warehouse=warehouse,
        through=params.get("month") or month_before(logical_date),
        exports_dir=Path(pick("exports", "keyaccounts_exports", "KEYACCOUNTS_EXPORTS",
                              str((base if is_postgres(warehouse) else Path(warehouse).parent) / "exports"))),
        reject_threshold=float(threshold),
        dbt_vars=dict(params.get("dbt_vars") or {}),
        restate=bool(params.get("restate")),
        restate_reason=params.get("restate_reason") or None,
        restated_by=params.get("restated_by") or None,
    )
    if cfg.business_time_zone != BUSINESS_TZ:
        # the schedules' zone is fixed when the DAGs are parsed: a run evaluating months in another zone
        # would take the month that ended in one zone and be refused (or cut days) in the other
        raise InputError(f"business_time_zone {cfg.business_time_zone} differs from the zone of the DAGs' "
                         f"schedules ({BUSINESS_TZ}): set {TIME_ZONE_ENV}={cfg.business_time_zone} in the Airflow "
                         f"environment and leave the dbt var unset")
    settings = settings_from_config(cfg, owner)
    # the connection id travels, never its URL: credentials stay in Airflow's connection store
    settings["sql_conn_id"] = params.get("sql_conn_id") or _variable("keyaccounts_sql_conn_id") or ""
    settings["sql_schema"] = params.get("sql_schema") or None
    return settings


def settings_from_config(cfg: RunConfig, owner: str | None = None) -> dict:
    """`owner`: the DAG run that claims the build (transform.build_claim); its dbt tasks carry it in
    KEYACCOUNTS_BUILD_OWNER."""
    from keyaccounts.pipeline import dbt_vars_for
    from keyaccounts.transform.dbt import warehouse_env

    warehouse = cfg.warehouse if cfg.on_postgres else str(Path(cfg.warehouse).resolve())
    # what the Cosmos dbt tasks need to reach the warehouse; never a password (XCom is stored in
    # the metadata DB): dbt reads KEYACCOUNTS_PG_PASSWORD from the worker's own environment
    dbt_env = {k: v for k, v in warehouse_env(warehouse).items() if k != "KEYACCOUNTS_PG_PASSWORD"}
    dbt_env["KEYACCOUNTS_BUILD_OWNER"] = owner or ""
    return {
        "inbox": str(cfg.inbox), "warehouse": warehouse, "dbt_env": dbt_env, "through": cfg.through,
        "exports": str(cfg.exports_dir), "reject_threshold": cfg.reject_threshold, "dbt_vars": cfg.dbt_vars,
        "dbt_vars_json": json.dumps(dbt_vars_for(cfg)),
        "build_owner": owner,
        "restate": cfg.restate, "restate_reason": cfg.restate_reason, "restated_by": cfg.restated_by,
    }


def config_from_settings(settings: dict) -> RunConfig:
    return RunConfig(inbox=settings["inbox"], warehouse=settings["warehouse"], through=settings["through"],
                     exports_dir=settings["exports"], reject_threshold=settings["reject_threshold"],
                     dbt_vars=settings["dbt_vars"], restate=settings.get("restate", False),
                     restate_reason=settings.get("restate_reason"), restated_by=settings.get("restated_by"))


def _run_task(fn, *args):
    """Run a pipeline task; a user/data error fails the task without retries (it would fail
    the same way again), anything else is left to Airflow's retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from keyaccounts.errors import KeyAccountsError, WarehouseLocked, WarehouseUnavailable
    from keyaccounts.ingest.sql_source import SourceUnavailable

    try:
        return fn(*args)
    except (WarehouseLocked, WarehouseUnavailable, SourceUnavailable):
        raise  # transient: another writer holds the file, a database is down; retry with back-off
    except KeyAccountsError as exc:
        detail = f" (details: {exc.details})" if exc.details else ""
        raise AirflowFailException(f"{exc}{detail}") from None


def ingest(settings: dict, run_id: str) -> dict:
    from keyaccounts.pipeline import ingest_task

    cfg = config_from_settings(settings)
    if settings.get("sql_conn_id"):
        from airflow.sdk import Connection

        cfg.sql_source = Connection.get(settings["sql_conn_id"]).get_uri()
        cfg.sql_schema = settings.get("sql_schema") or None
    result = _run_task(ingest_task, cfg, run_id)
    if result.unknown_folders:
        import logging

        logging.getLogger(__name__).warning("inbox folders not read (each feed reads the folder of its own name): %s",
                                            ", ".join(result.unknown_folders))
    return {feed: vars(stats) for feed, stats in result.feeds.items()}


def held_back(settings: dict) -> dict:
    """List the rows the build held back in their feeds' quarantine tables; how many, per feed and
    reason."""
    from keyaccounts.pipeline import held_back_task

    return _run_task(held_back_task, config_from_settings(settings))


def checks(settings: dict) -> dict:
    """Great Expectations on the built month; a failed blocking check fails without retry."""
    from keyaccounts.pipeline import check_task

    report = _run_task(check_task, config_from_settings(settings), settings.get("build_owner"))
    for warning in report.warnings:
        print(f"WARNING data check: {warning}")
    return {name: r["success"] for name, r in report.results.items()}


def publish(settings: dict, run_id: str) -> list[str]:
    from keyaccounts.pipeline import publish_task

    cfg = config_from_settings(settings)
    paths = _run_task(publish_task, cfg, run_id, settings.get("build_owner"))
    pub = cfg.last_publish
    if pub is not None and pub.action == "unchanged" and pub.differs_from_record and not cfg.restate:
        import logging

        # as `keyaccounts run` says it: the marts follow corrected sources, the record does not
        logging.getLogger(__name__).warning(
            "%s was already published (version %s): the record and the exports keep it, but the marts now show "
            "the rebuilt month, in which %s customers differ from the record; to make it the record, trigger "
            "monthly_tiers with restate, restate_reason and restated_by", cfg.through, pub.version,
            pub.differs_from_record)
    return [str(p) for p in paths]


# dbt failures worth a retry: the DuckDB file held by another process, PostgreSQL down or restarting
TRANSIENT_DBT_ERRORS = (DUCKDB_FILE_LOCK, "Conflicting lock", "Connection refused",
                        "could not connect to server", "server closed the connection unexpectedly",
                        "the database system is starting up", "the database system is shutting down",
                        "terminating connection due to administrator command", "timeout expired")


def _retry_dbt_only_when_transient() -> None:
    """Cosmos raises one error type for a failed model and for a warehouse it could not open, and
    Airflow retries every error: a failed model or test (bad data, a bad rule) would be built again
    for nothing. So a dbt failure whose message is not a lock or a connection fault is re-raised as
    AirflowFailException, which Airflow does not retry. Cosmos has no hook for this: its module
    function that raises the error is wrapped (once per process)."""
    from cosmos.dbt import runner

    if getattr(runner.handle_exception_if_needed, "keyaccounts", False):
        return
    cosmos_handler = runner.handle_exception_if_needed

    def handle_exception_if_needed(result) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            cosmos_handler(result)
        except Exception as exc:
            if any(text in str(exc) for text in TRANSIENT_DBT_ERRORS):
                raise
            raise AirflowFailException(str(exc)) from exc

    handle_exception_if_needed.keyaccounts = True
    runner.handle_exception_if_needed = handle_exception_if_needed


def dbt_task_group(group_id: str = "dbt", settings_task: str = "settings"):
    """The dbt project as an Airflow task group (astronomer-cosmos), rendered from the
    manifest (no dbt at parse time); one `dbt build` task per model with its own tests, and a task
    for each test of several models after all of them."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    xcom = f"ti.xcom_pull(task_ids='{settings_task}')"
    _retry_dbt_only_when_transient()
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR, manifest_path=MANIFEST_PATH, project_name="keyaccounts",
        ),
        profile_config=ProfileConfig(
            profile_name="keyaccounts", target_name=DBT_TARGET, profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER),
        # a test of several models (dbt_project/tests/tier_rules) is its own task after all of them: run
        # with the first model's build, it would read models this run has not built yet
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD,
                                   emit_datasets=False, should_detach_multiple_parents_tests=True),
        operator_args={
            "vars": "{{ " + xcom + "['dbt_vars_json'] }}",
            "env": {name: "{{ " + xcom + f"['dbt_env'].get('{name}', '') }}}}" for name in DBT_ENV_NAMES},
            "append_env": True,
            "pool": DUCKDB_POOL,
            # Airflow's retries (dag_args) stay on: only a warehouse in use or unreachable is retried,
            # any other dbt failure (a failed model or test) fails at once (_retry_dbt_only_when_transient)
        },
    )


def dag_args(*tags: str) -> dict:
    """What every keyaccounts DAG shares (dates, retries, params, one run at a time)."""
    return dict(start_date=START_DATE, catchup=False, max_active_runs=1, default_args=DEFAULT_ARGS,
                tags=[*TAGS, *tags], params=params())


def run_date(context) -> datetime:
    """The run's logical date; asset-triggered and manual runs may have none (Airflow 3),
    then the time the run was due."""
    return context.get("logical_date") or context["dag_run"].run_after


# --- task factories: the DAG files call these to add a task (wiring only in dags/) ---------


def settings_task():
    from airflow.sdk import get_current_context, task

    # in the pool too: it reads the last published month, which opens the warehouse file (and creates the
    # publish log of a new one), so beside another DAG's writer it would only meet DuckDB's lock
    @task(task_id="settings", pool=DUCKDB_POOL)
    def settings() -> dict:
        context = get_current_context()
        # a bad param: no retry
        return _run_task(resolve_settings, context["params"], run_date(context), context["run_id"])

    return settings()


def ingest_task(run_settings):
    from airflow.sdk import get_current_context, task

    @task(task_id="load_inbox", pool=DUCKDB_POOL, outlets=[raw_alias()])
    def load_inbox(s: dict) -> dict:
        context = get_current_context()
        stats = ingest(s, context["run_id"])
        for feed in changed_feeds(stats):
            context["outlet_events"][raw_alias()].add(feed_asset(feed))
        return stats

    return load_inbox(run_settings)


def claim(settings: dict) -> None:
    """This DAG run builds marts_build from now on (transform.build_claim)."""
    from keyaccounts.ingest.coverage import check_month_can_be_evaluated
    from keyaccounts.transform import build_claim
    from keyaccounts.transform.dbt import store_pii_salt
    from keyaccounts.warehouse import connection, has_table

    def run() -> None:
        with connection(settings["warehouse"]) as conn:
            # as `keyaccounts run` does: a month before the data (a backfill that starts too early) is
            # one clear line, not a failed row-count check after a whole build
            if not has_table(conn, "raw", "orders"):
                raise InputError(f"nothing has been ingested into {settings['warehouse']} yet: run the ingest DAG "
                                 "first")
            check_month_can_be_evaluated(conn, settings["through"], Path(settings["inbox"]))
            build_claim.claim(conn, settings["build_owner"])
            store_pii_salt(conn)  # Cosmos runs dbt itself: staging's hash reads the salt from audit

    _run_task(run)


def claim_task(run_settings):
    from airflow.sdk import task

    @task(task_id="claim_build", pool=DUCKDB_POOL)
    def claim_build(s: dict) -> None:
        claim(s)

    return claim_build(run_settings)


def held_back_task(run_settings):
    from airflow.sdk import task

    @task(task_id="list_held_back", pool=DUCKDB_POOL)
    def list_held_back(s: dict) -> dict:
        return held_back(s)

    return list_held_back(run_settings)


def checks_task(run_settings):
    from airflow.sdk import task

    @task(task_id="checks", pool=DUCKDB_POOL)
    def run_checks(s: dict) -> dict:
        return checks(s)

    return run_checks(run_settings)


def publish_task(run_settings):
    from airflow.sdk import get_current_context, task

    @task(task_id="publish", pool=DUCKDB_POOL, outlets=[marts_asset()])
    def run_publish(s: dict) -> list[str]:
        return publish(s, get_current_context()["run_id"])

    return run_publish(run_settings)
