"""The task functions of the pipeline. The CLI calls them in order; the Airflow DAGs call
the same functions, one task each. They hold no business rule: rules are in dbt."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from keyaccounts.config import RunConfig, check_environment
from keyaccounts.errors import InputError, KeyAccountsError
from keyaccounts.ingest.coverage import check_month_can_be_evaluated
from keyaccounts.ingest.held_back import record_held_back
from keyaccounts.ingest.loader import IngestResult, ingest_inbox
from keyaccounts.ingest.sql_source import SqlSource
from keyaccounts.publish.exports import export_month, report_files_of_version
from keyaccounts.publish.managers import export_managers
from keyaccounts.publish import up_to_date, wap
from keyaccounts.publish.bi_copy import is_copy_of, stage_bi_copy
from keyaccounts.publish.pending import PendingFiles
from keyaccounts.publish.report import build_report
from keyaccounts.publish.log import last_published_month, months_missing_files, published_by, record_publish
from keyaccounts.transform import build_claim
from keyaccounts.transform.dbt import models_at_once, run_dbt, store_pii_salt
from keyaccounts.publish.folders import claim_output_folders
from keyaccounts.warehouse import connection, redact, run_lock


def checkpoint(name: str) -> None:
    """Test hook (fault injection), a no-op in normal use.

    The tasks call it at their stage boundaries: "ingest" (start of ingest_task), "dbt"
    (start of transform_task), "checks" (start of check_task), "publish" (in publish_task,
    inside the publish transaction, after the swap, before the exports), "exports" (after the
    exports and report, before the BI copy) and "committed" (after the commit, before the
    files are renamed into place). Only when the environment variable
    KEYACCOUNTS_FAULT_PAUSE equals `name`, it writes the file named by KEYACCOUNTS_FAULT_READY
    (so a test knows the point is reached) and sleeps for up to 120 s, so that the test can
    kill the process there (tests/test_reliability.py); it returns early when the test
    removes that file, to let the run go on.
    """
    if os.environ.get("KEYACCOUNTS_FAULT_PAUSE") != name:
        return
    ready = os.environ.get("KEYACCOUNTS_FAULT_READY")
    if ready:
        tmp = Path(ready + ".tmp")
        tmp.write_text(f"{os.getpid()} {name}\n", encoding="utf-8")
        os.replace(tmp, ready)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ready and not Path(ready).exists():
            return
        time.sleep(0.05)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


@dataclass
class RunResult:
    run_id: str
    ingest: IngestResult | None = None
    checks: object = None
    exports: list[Path] = field(default_factory=list)
    # set when nothing changed since that completed run: no build, no checks, no publish
    up_to_date_with: up_to_date.LastRun | None = None
    # rows the build held back (loaded, but not counted yet), per feed and reason
    held_back: dict[str, dict[str, int]] = field(default_factory=dict)


def ingest_task(cfg: RunConfig, run_id: str) -> IngestResult:
    checkpoint("ingest")
    source = SqlSource(cfg.sql_source, cfg.sql_schema) if cfg.sql_source else None
    with connection(cfg.warehouse) as conn:
        return ingest_inbox(conn, cfg.inbox, run_id, cfg.reject_threshold, source)


def build_through(cfg: RunConfig) -> str:
    """The month the marts are built through: the one asked for, or a later month already
    published (marts never fall behind what was published; a month's rows do not depend on
    later months, so an older month's rows come out the same)."""
    last = last_published_month(cfg.warehouse)
    return max(cfg.through, last) if last else cfg.through


def dbt_vars_for(cfg: RunConfig) -> dict:
    # marts are built beside the published ones and swapped in by publish_task (write-audit-publish)
    return {**cfg.dbt_vars, "through_month": build_through(cfg), "marts_schema": wap.BUILD_SCHEMA}


def transform_task(cfg: RunConfig, owner: str | None = None) -> None:
    """Build and test every dbt model (dbt build); with `owner`, as that run's claimed build
    (transform.build_claim)."""
    checkpoint("dbt")
    with connection(cfg.warehouse) as conn:
        if owner:
            build_claim.claim(conn, owner)
        store_pii_salt(conn)
    run_dbt("build", cfg.warehouse, cfg.dbt_state_dir, dbt_vars_for(cfg),
            extra=["--full-refresh"] if cfg.full_refresh else None, threads=models_at_once(cfg.warehouse),
            owner=owner)


def held_back_task(cfg: RunConfig) -> dict[str, dict[str, int]]:
    """After the build: list the rows it held back (missing rate, currency mismatch, ...) in
    their feeds' quarantine tables (ingest.held_back); returns how many there are, per feed and
    reason."""
    with connection(cfg.warehouse) as conn:
        return record_held_back(conn)


def held_back_hint(held_back: dict[str, dict[str, int]]) -> str:
    """The rows waiting for an fx rate, for a failed run's one-line message ('' when none)."""
    waiting = [f"{n} {feed} row(s)" for feed, reasons in held_back.items() for reason, n in reasons.items()
               if reason == "missing_fx_rate"]
    if not waiting:
        return ""
    return (f"; {' and '.join(waiting)} wait for an fx rate of their month (quarantine.held_back): deliver "
            "fx_rates, or set --var reporting_currency=<their currency> if the book is kept in it")


def check_task(cfg: RunConfig, owner: str | None = None):
    """Great Expectations suites on the built month (marts_build); raises ChecksFailed. With `owner`,
    the checked build must be that run's, and is marked checked for its publish."""
    checkpoint("checks")
    from keyaccounts.checks import CheckReport, run_checks

    with connection(cfg.warehouse) as conn:
        if owner and published_by(conn, cfg.through, owner) is not None:
            # an Airflow task re-run after its own run published: the build it checked is the
            # published marts now (on DuckDB renamed out of marts_build), nothing is left to check
            return CheckReport(cfg.through, warnings=[f"run {owner} already checked and published {cfg.through}"])
        if owner:
            build_claim.verify(conn, owner)
        report = run_checks(conn, cfg)
        if owner:
            build_claim.mark_checked(conn, owner)
        return report


def output_folders(cfg: RunConfig) -> list[Path]:
    """The folders a publish writes: the exports and (DuckDB) the BI copy beside the warehouse."""
    return [cfg.exports_dir] + ([] if cfg.on_postgres else [Path(cfg.warehouse).parent / "published"])


def publish_task(cfg: RunConfig, run_id: str, owner: str | None = None) -> list[Path]:
    """Swap the checked marts in, record the month in marts.published_tiers (append-only),
    write the month's exports, report and BI copy from that record, and log the publish: all
    or nothing. The files are written inside the publish transaction under temporary names
    and renamed into place after the commit, so a failure (a full exports disk, a kill)
    leaves the last good publish whole; a kill between the commit and the renames leaves
    the record ahead of the files, and the next run writes them (from the record)."""
    pending = PendingFiles()
    paths: list[Path] = []
    with connection(cfg.warehouse) as conn:
        claim_output_folders(conn, output_folders(cfg), redact(cfg.warehouse))
        done = published_by(conn, cfg.through, run_id)
        if done is not None:  # an Airflow task retried or re-run after its commit
            return _complete_publish(conn, cfg, run_id, done, pending)

        def write_files(result: wap.PublishResult) -> None:
            checkpoint("publish")
            up_to_date.clear(conn)  # until run_pipeline records this run as complete
            paths.extend(_write_month_files(conn, cfg, result.action, result.version, pending))
            checkpoint("exports")
            if not cfg.on_postgres:  # on PostgreSQL, BI reads the marts through its read-only role
                stage_bi_copy(conn, cfg.warehouse, run_id, pending)
            record_publish(conn, cfg.through, run_id, paths, result.action, result.version, cfg.restated_by,
                           cfg.restate_reason)

        try:
            result = wap.publish(conn, cfg.through, run_id, restate=cfg.restate, reason=cfg.restate_reason,
                                 by=cfg.restated_by, before_commit=write_files, owner=owner)
        except BaseException:
            pending.discard()
            raise
    checkpoint("committed")
    pending.commit()
    cfg.last_publish = result
    return paths


def _complete_publish(conn, cfg: RunConfig, run_id: str, done: tuple, pending: PendingFiles) -> list[Path]:
    """This run's publish committed already (the task was killed after its commit and retried, or
    re-run by hand): the record and the marts are in place, so nothing is published again. The
    files a kill may have left unwritten are written from the record, as the publish writes them:
    the month's (a file of an earlier version may stand under the same name), any other month's
    that are missing, and (DuckDB) the BI copy, if the one in place is not this run's."""
    action, version, files = done
    _write_month_files(conn, cfg, action, version, pending)
    if not cfg.on_postgres and not is_copy_of(Path(cfg.warehouse), run_id):
        stage_bi_copy(conn, cfg.warehouse, run_id, pending)
    pending.commit()
    cfg.last_publish = wap.PublishResult(cfg.through, action, version)
    return files


def _write_month_files(conn, cfg: RunConfig, action: str, version: int, pending: PendingFiles) -> list[Path]:
    """Write, from the record, the month's export and (unless an unchanged month keeps those of
    its version) its report and managers' files, and every other month's a kill after its commit
    left unwritten; returns the month's files."""
    for earlier in months_missing_files(conn, cfg.exports_dir, but=cfg.through):
        write_all_files(conn, earlier, cfg.exports_dir, pending)
    kept = None
    if action == "unchanged":  # checked before export_month rewrites the Parquet
        kept = report_files_of_version(cfg.exports_dir, cfg.through, version)
    if kept is None:
        return write_all_files(conn, cfg.through, cfg.exports_dir, pending)
    return list(export_month(conn, cfg.through, cfg.exports_dir, pending)) + kept


def write_all_files(conn, month: str, exports_dir: Path, pending: PendingFiles | None = None) -> list[Path]:
    """The month's export (CSV, Parquet), managers' files and report, from the record."""
    return [*export_month(conn, month, exports_dir, pending), export_managers(conn, month, exports_dir, pending),
            build_report(conn, month, exports_dir, pending)]


def run_pipeline(cfg: RunConfig) -> RunResult:
    run_id = cfg.run_id or new_run_id()
    result = RunResult(run_id)
    check_environment()
    # before the warehouse is created or locked: a folder this user may not list is an unreadable inbox
    if not cfg.inbox.is_dir() or not os.access(cfg.inbox, os.R_OK | os.X_OK):
        raise InputError(f"inbox {cfg.inbox} is not a readable folder")
    # Fail fast on a locked warehouse before reading any file, and hold a run lock for the
    # whole run: DuckDB's own lock is free between our steps, when another run could slip in
    # and publish a build this run checked (or the reverse).
    with connection(cfg.warehouse):
        pass
    with run_lock(cfg.warehouse):
        result.ingest = ingest_task(cfg, run_id)
        dbt_vars = dbt_vars_for(cfg)
        with connection(cfg.warehouse) as conn:
            check_month_can_be_evaluated(conn, cfg.through, cfg.inbox)
            claim_output_folders(conn, output_folders(cfg), redact(cfg.warehouse))  # before any build
            fingerprint = up_to_date.fingerprint(conn, dbt_vars, cfg.through, cfg.exports_dir)
            if not (cfg.full_refresh or cfg.restate):
                bi_copy = None if cfg.on_postgres else Path(cfg.warehouse).parent / "published"
                result.up_to_date_with = up_to_date.unchanged_since(conn, fingerprint, cfg.through, bi_copy)
        if result.up_to_date_with is not None:
            last = result.up_to_date_with
            cfg.last_publish = wap.PublishResult(cfg.through, "up_to_date", last.version)
            result.exports = last.exports
            return result
        transform_task(cfg, owner=run_id)
        result.held_back = held_back_task(cfg)
        try:
            result.checks = check_task(cfg, owner=run_id)
        except KeyAccountsError as exc:
            from keyaccounts.checks import ChecksFailed  # imported by check_task already (GX is slow to import)

            if isinstance(exc, ChecksFailed):
                # a book whose orders all wait for a rate fails its checks with an empty tier table: say why
                exc.args = (str(exc) + held_back_hint(result.held_back),)
            raise
        result.exports = publish_task(cfg, run_id, owner=run_id)
        with connection(cfg.warehouse) as conn:
            up_to_date.record(conn, cfg.through, run_id, fingerprint)
    return result
