"""`keyaccounts`: the command-line contract of operations.md (thin: calls pipeline tasks).

Exit status: 0 success; 1 unexpected internal error; 2 usage; 3 input (inbox, month,
warehouse path); 4 warehouse locked; 5 reject threshold exceeded; 6 dbt build or test
failed. Failures print one line on stderr, plus a pointer to the details.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from keyaccounts.errors import InputError, KeyAccountsError
from keyaccounts.ingest.contract import REJECT_THRESHOLD


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # no abbreviated options (`--warehous`): a script relying on a prefix breaks when an option is added
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like other usage errors
        self.exit(2, f"keyaccounts: error: {message} (see `keyaccounts --help`)\n")


def _warehouse_arg(text: str) -> str:
    from keyaccounts.warehouse import check_warehouse_text

    try:
        return check_warehouse_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="keyaccounts", description="Key-account (大客户) tiers from orders, receivables and surveys.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="ingest an inbox, build and check the marts, publish through a month")
    run.add_argument("--inbox", required=True, type=Path, help="folder with one sub-folder per feed")
    run.add_argument("--warehouse", required=True, type=_warehouse_arg,
                     help="DuckDB file (created if absent) or postgresql://USER@HOST:PORT/DB (password: env "
                          "KEYACCOUNTS_PG_PASSWORD)")
    run.add_argument("--through", required=True, help="last evaluation month, YYYY-MM")
    run.add_argument("--exports", type=Path, default=None, help="exports folder (default: <warehouse folder>/exports)")
    run.add_argument("--reject-threshold", type=float, default=REJECT_THRESHOLD,
                     help=f"fail when more than this share of a feed's rows is quarantined (default {REJECT_THRESHOLD})")
    run.add_argument("--sql-source", default=os.environ.get("KEYACCOUNTS_SQL_SOURCE"), metavar="URL",
                     help="also read orders, invoices, payments from this SQLAlchemy URL (postgresql://, "
                          "sqlite:///, ...), incrementally (default: env KEYACCOUNTS_SQL_SOURCE; keep passwords "
                          "out of the command line)")
    run.add_argument("--sql-schema", default=None,
                     help="schema of the source tables (default: public on PostgreSQL, else the database's own)")
    run.add_argument("--restate", action="store_true",
                     help="publish the month again as a new version even if it was published (needs --reason, --by)")
    run.add_argument("--reason", default=None, help="why the month is restated")
    run.add_argument("--by", default=None, help="who approved the restatement")
    run.add_argument("--full-refresh", action="store_true",
                     help="re-stage every raw row instead of only new and changed keys (e.g. after an upgrade)")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="override a dbt var of dbt_project.yml (YAML value), e.g. --var grace_months=2")

    demo = sub.add_parser("demo", help="generate a deterministic demo inbox and run the pipeline on it")
    demo.add_argument("--customers", type=_at_least_one, default=2000, help="customers to generate (default 2000)")
    demo.add_argument("--years", type=_at_least_one, default=3, help="years of history (default 3)")
    demo.add_argument("--seed", type=int, default=42, help="random seed: the same seed, the same data (default 42)")
    demo.add_argument("--through", default="2026-10", help="last month of the demo history, YYYY-MM (default 2026-10)")
    demo.add_argument("--dir", type=Path, default=None, help="where to put the demo inbox and warehouse")
    demo.add_argument("--direct", action="store_true", help="run the pipeline directly instead of through Airflow")

    status = sub.add_parser("status", help="what was ingested, quarantined and published")
    status.add_argument("--warehouse", required=True, type=_warehouse_arg, help="the warehouse: a DuckDB file or postgresql://...")

    grant = sub.add_parser("grant-bi", help="create or update the read-only BI role of a PostgreSQL warehouse")
    grant.add_argument("--warehouse", required=True, type=_warehouse_arg, help="postgresql://USER@HOST:PORT/DB (an owner of the marts)")
    grant.add_argument("--role", default=os.environ.get("KEYACCOUNTS_BI_ROLE", "keyaccounts_bi"),
                       help="role name (default: env KEYACCOUNTS_BI_ROLE or keyaccounts_bi); its password is "
                            "read from env KEYACCOUNTS_BI_PASSWORD")

    export = sub.add_parser("export", help="re-write the exports of a month")
    export.add_argument("--warehouse", required=True, type=_warehouse_arg, help="the warehouse: a DuckDB file or postgresql://...")
    export.add_argument("--month", required=True, help="a published month, YYYY-MM")
    export.add_argument("--out", required=True, type=Path, help="folder to write the CSV, Parquet, manager files "
                                                                 "and report to (created if missing)")
    sample = sub.add_parser("import-sample", help="map a real public export (shared/data/real) to an inbox")
    sample.add_argument("name", help="ibm_ar | northwind | olist | superstore")
    sample.add_argument("--out", required=True, type=Path, help="inbox folder to write")
    sample.add_argument("--data-dir", type=Path, default=None, help="folder with the exports (default ../shared/data/real)")
    return p


def _at_least_one(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse turns the error into a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parse_vars(pairs: list[str]) -> dict:
    import yaml

    from keyaccounts.errors import UsageError

    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var expects NAME=VALUE, got {pair!r}")
        try:
            out[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UsageError(f"--var {name.strip()}: {value!r} is not a YAML value ({first})") from None
    return out


def _print_ingest(result) -> None:
    from rich.table import Table

    table = Table(title=f"ingest run {result.run_id}")
    for col in ("feed", "files seen", "taken", "skipped", "bad files", "rows read", "loaded", "updated", "quarantined"):
        table.add_column(col, justify="right" if col != "feed" else "left")
    for s in result.feeds.values():
        table.add_row(s.feed, *(str(x) for x in (s.files_seen, s.files_taken, s.files_skipped, s.files_quarantined,
                                                  s.rows_read, s.rows_loaded, s.rows_updated, s.rows_quarantined)))
    _console(stderr=True).print(table)
    for s in result.feeds.values():
        for bad in s.bad_files:  # a whole file not loaded is said aloud, not only counted (quarantine.files)
            print(f"file quarantined whole, none of its rows loaded: {bad}", file=sys.stderr)
    if result.unknown_folders:
        print("inbox folders not read (each feed reads the folder of its own name): "
              + ", ".join(result.unknown_folders), file=sys.stderr)


def _console(stderr: bool = False):
    """rich prints 80 columns when not on a terminal, cutting the tables' cells (`status > file`):
    give piped output room (COLUMNS still wins, as rich reads it first)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 240
    return Console(stderr=stderr, width=width)


def cmd_run(args) -> int:
    from keyaccounts.config import RunConfig
    from keyaccounts.pipeline import run_pipeline
    from keyaccounts.warehouse import redact

    if args.restate and not (args.reason and args.by):  # arguments missing: a usage error, before anything runs
        from keyaccounts.errors import UsageError

        raise UsageError("--restate needs --reason and --by (who approved the restatement)")
    cfg = RunConfig(inbox=args.inbox, warehouse=args.warehouse, through=args.through,
                    exports_dir=args.exports, reject_threshold=args.reject_threshold,
                    dbt_vars=_parse_vars(args.var), sql_source=args.sql_source, sql_schema=args.sql_schema,
                    restate=args.restate, restate_reason=args.reason, restated_by=args.by,
                    full_refresh=args.full_refresh)
    result = run_pipeline(cfg)
    _print_ingest(result.ingest)
    for feed, reasons in result.held_back.items():
        # loaded rows the build cannot count yet (sources.md: held back, retried on later runs); the
        # ingest table's "quarantined" are the rows refused at the door
        print(f"held back by the build, listed in quarantine.{feed} and retried on later runs: "
              + ", ".join(f"{n} {reason}" for reason, n in reasons.items()), file=sys.stderr)
    pub = cfg.last_publish
    if result.up_to_date_with is not None:
        print(f"{cfg.through} was already published (version {pub.version}) by run {result.up_to_date_with.run_id}, "
              f"and nothing changed since (no new input, same settings and code): nothing rebuilt")
    elif pub.action == "unchanged":
        note = f"{cfg.through} was already published (version {pub.version}); the record is unchanged"
        if cfg.restate:
            note = (f"{cfg.through} was already published (version {pub.version}) and the rebuilt month is "
                    f"identical to it: --restate adds no version")
        elif pub.differs_from_record:
            # the marts follow corrected sources (metrics.md); the record and the exports do not
            note = (f"{cfg.through} was already published (version {pub.version}): the record "
                    f"(marts.published_tiers) and the exports keep it, but the marts and the BI copy now show "
                    f"the rebuilt month, in which {pub.differs_from_record} customers differ from the record; "
                    f"to make it the record, run again with --restate --reason ... --by ...")
        print(note)
    else:
        extra = f", {pub.changed_customers} customers changed" if pub.action == "restated" else ""
        print(f"{pub.action} {cfg.through} (version {pub.version}{extra}): "
              f"select * from marts.customer_tier_monthly in {redact(cfg.warehouse)}")
    for path in result.exports:
        print(f"export: {path}")
    return 0


def cmd_demo(args) -> int:
    """Generate the demo inbox and run ingest -> transform -> monthly_tiers through Airflow."""
    import importlib.util
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from rich.console import Console

    from keyaccounts.config import (PROJECT_ROOT, STATE_DIR, RunConfig, business_time_zone, check_month_has_ended,
                                    parse_month)

    console = Console(stderr=True)
    through = parse_month(args.through)
    # before generating anything: a month that has not ended cannot be evaluated
    check_month_has_ended(through, business_time_zone({}))
    base = (args.dir or STATE_DIR / "demo").resolve()
    inbox, warehouse, log = base / "inbox", base / "warehouse.duckdb", base / "demo.log"
    base.mkdir(parents=True, exist_ok=True)

    def step(title: str, fn, *fn_args):
        started = time.monotonic()
        with console.status(f"{title} ..."):
            out = fn(*fn_args)
        console.print(f"[green]✓[/green] {title} ({time.monotonic() - started:.0f} s)")
        return out

    spec = importlib.util.spec_from_file_location("generate_demo_data", PROJECT_ROOT / "scripts" / "generate_demo_data.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses in the script look their module up
    spec.loader.exec_module(gen)
    counts = step(f"generate demo inbox ({args.customers} customers, {args.years} years)", gen.generate, inbox,
                  args.customers, args.years, args.seed, through)
    console.print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if args.direct:
        from keyaccounts.pipeline import run_pipeline

        result = step("keyaccounts run", run_pipeline, RunConfig(inbox=inbox, warehouse=warehouse, through=through))
        exports = result.exports
    else:
        from keyaccounts import airflow_local as af

        step("dbt manifest for Cosmos", af.ensure_manifest)
        env = step("Airflow metadata DB and pool", af.ensure_airflow, af.AIRFLOW_HOME, log)
        year, month = map(int, through.split("-"))
        nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=ZoneInfo(af.BUSINESS_TZ)).isoformat()
        conf = {"inbox": str(inbox), "warehouse": str(warehouse)}
        for dag_id in ("ingest", "transform", "monthly_tiers"):
            step(f"airflow dags test {dag_id} {nxt}", af.dags_test, dag_id, nxt, conf, env, log)
        exports = sorted((warehouse.parent / "exports").glob(f"*_{through}.*"))
    print(f"tier table: select * from marts.customer_tier_monthly where eval_month = '{through}'  (duckdb {warehouse})")
    for path in exports:
        print(f"export: {path}")
    print(f"BI copy: {warehouse.parent / 'published' / 'marts.duckdb'} and {warehouse.parent / 'published' / 'parquet'}/")
    print(f"log: {log}")
    return 0


def cmd_status(args) -> int:
    """Per run and feed: files and rows; quarantine by reason; published months; tier counts."""
    from rich.table import Table

    from keyaccounts.warehouse import connection, has_table, reader_lock, redact

    console = _console()

    def show(title: str, columns: list[str], data: list[tuple]) -> None:
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for r in data:
            table.add_row(*("" if v is None else str(v) for v in r))
        console.print(table)

    with reader_lock(args.warehouse), connection(args.warehouse, read_only=True) as conn:
        if not has_table(conn, "audit", "ingest_runs"):
            raise InputError(f"{redact(args.warehouse)} holds no keyaccounts run yet; run `keyaccounts run` first")
        show("ingest runs (latest 10), per feed",
             ["run", "status", "feed", "files seen", "taken", "skipped", "bad files", "rows read", "loaded", "updated",
              "quarantined"],
             conn.execute(
                 """select run_id, status, feed, files_seen, files_taken, files_skipped, files_quarantined, rows_read,
                           rows_loaded, rows_updated, rows_quarantined
                    from audit.ingest_runs
                    where run_id in (select run_id from audit.ingest_runs group by run_id
                                     order by max(finished_at) desc limit 10)
                      and (files_seen > 0 or rows_read > 0)
                    order by finished_at desc, feed""").fetchall())
        from keyaccounts.ingest.contract import FEEDS

        reasons = []
        for feed in FEEDS:
            reasons += conn.execute(
                f"select '{feed}', _reason, count(*) from quarantine.{feed} group by _reason order by 3 desc").fetchall()
        reasons += conn.execute("select feed, 'file: ' || reason, count(*) from quarantine.files group by feed, reason").fetchall()
        show("quarantined (all runs; missing_fx_rate and currency_mismatch: held back by the build, retried)",
             ["feed", "reason", "rows"], reasons)
        by_month = _rows_per_feed_and_month(conn)
        show("rows per feed and month (loaded / quarantined at ingest; rows the build holds back, e.g. for a "
             "missing fx rate, are loaded and listed above; the month of the row's own date; latest 12)",
             ["month", *by_month["feeds"]], by_month["rows"])
        if has_table(conn, "audit", "publish_log"):
            show("published months", ["month", "action", "version", "run", "published at"],
                 conn.execute("select eval_month, action, version, run_id, published_at from audit.publish_log "
                              "order by published_at desc limit 12").fetchall())
        if has_table(conn, "marts", "customer_tier_monthly"):
            show("tiers (latest 12 months)", ["month", "customers", "A", "B", "C"], conn.execute(
                "select eval_month, count(*), count(*) filter (where tier = 'A'), count(*) filter (where tier = 'B'), "
                "count(*) filter (where tier = 'C') from marts.customer_tier_monthly group by 1 order by 1 desc limit 12"
            ).fetchall())
    return 0


# the date that places a row of each feed in a month (operations.md: status per feed and month)
MONTH_OF_ROW = {"customers": "signed_on", "orders": "order_date", "invoices": "invoice_date",
                "payments": "payment_date", "survey_responses": "submitted_at", "fx_rates": "month",
                "tier_overrides": "eval_month", "interactions": "opened_at"}


def _rows_per_feed_and_month(conn) -> dict:
    """Rows loaded into raw (every version) and quarantined, per feed and month of the row's own
    date as written (`?` when it is not a date), latest 12 months first."""
    from keyaccounts.ingest.held_back import HELD_BACK_RUN_ID

    counts: dict[tuple[str, str], list[int]] = {}
    for feed, column in MONTH_OF_ROW.items():
        # plain SQL, the same on DuckDB and PostgreSQL
        month = (f"case when substr(trim({column}), 1, 7) like '____-__' "
                 f"then substr(trim({column}), 1, 7) else '?' end")
        # rows held back by the build are loaded rows (in raw), listed in quarantine as well
        for i, (table, where) in enumerate(((f"raw.{feed}", "true"),
                                            (f"quarantine.{feed}", f"_run_id <> '{HELD_BACK_RUN_ID}'"))):
            for m, n in conn.execute(f"select {month}, count(*) from {table} where {where} "
                                     "group by 1").fetchall():
                counts.setdefault((feed, m), [0, 0])[i] += n
    feeds = [f for f in MONTH_OF_ROW if any(k[0] == f for k in counts)]
    months = sorted({m for _, m in counts}, reverse=True)[:12]
    rows = [(m, *(f"{counts[(f, m)][0]} / {counts[(f, m)][1]}" if (f, m) in counts else "" for f in feeds))
            for m in months]
    return {"feeds": feeds, "rows": rows}


def cmd_export(args) -> int:
    from keyaccounts.config import parse_month
    from keyaccounts.pipeline import write_all_files
    from keyaccounts.warehouse import connection, has_table, reader_lock, redact

    month = parse_month(args.month, "--month")
    with reader_lock(args.warehouse), connection(args.warehouse, read_only=True) as conn:
        if not has_table(conn, "marts", "published_tiers") or not conn.execute(
                "select count(*) from marts.published_tiers where eval_month = ?", [month]).fetchone()[0]:
            published = [m for (m,) in conn.execute("select distinct eval_month from marts.published_tiers "
                                                    "order by 1").fetchall()] if has_table(
                conn, "marts", "published_tiers") else []
            listed = ", ".join(published[-12:]) if published else "none yet"
            raise InputError(f"month {month} was never published in {redact(args.warehouse)} (published: {listed})")
        for path in write_all_files(conn, month, args.out):
            print(f"export: {path}")
    return 0


def cmd_grant_bi(args) -> int:
    from keyaccounts.publish.bi_role import grant_bi
    from keyaccounts.warehouse import redact

    role, left = grant_bi(args.warehouse, args.role, os.environ.get("KEYACCOUNTS_BI_PASSWORD"))
    print(f"role {role} can read schema marts (and nothing else) in {redact(args.warehouse)}")
    if left:
        print("keyaccounts: this role may not take PostgreSQL's defaults for every role (temp tables, large "
              "objects, advisory locks) in this database; as a superuser, run:\n" + "\n".join(f"  {s};" for s in left),
              file=sys.stderr)
    return 0


def cmd_import_sample(args) -> int:
    from keyaccounts.samples import import_sample

    counts = import_sample(args.name, args.out, args.data_dir)
    print(f"inbox {args.out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


COMMANDS = {"run": cmd_run, "demo": cmd_demo, "status": cmd_status, "export": cmd_export,
            "grant-bi": cmd_grant_bi, "import-sample": cmd_import_sample}


def _internal_error(exc: BaseException) -> int:
    """A bug, not a user error: one line on stderr, the traceback in a file of its own (readable by
    this user only: a shared temp folder may hold other users' crash logs, which must not block it)."""
    import tempfile
    import traceback

    print(f"keyaccounts: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
          file=sys.stderr)
    try:
        fd, name = tempfile.mkstemp(prefix="keyaccounts-crash-", suffix=".log")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        print(f"keyaccounts: details: {name}", file=sys.stderr)
    except OSError as err:
        print(f"keyaccounts: details: not written ({err.strerror or err})", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyAccountsError as exc:
        print(f"keyaccounts: error: {exc}", file=sys.stderr)
        if exc.details:
            print(f"keyaccounts: details: {exc.details}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("keyaccounts: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        import errno

        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOENT):
            # a path the user gave cannot be used (an --out that is a file, a missing folder)
            what = {errno.EEXIST: " (a file is in the way of a folder to write)",
                    errno.ENOTDIR: " (a file is in the way of a folder to write)"}.get(exc.errno, "")
            print(f"keyaccounts: error: {exc.strerror}{where}{what}", file=sys.stderr)
            return InputError.exit_code
        if exc.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM):
            return _internal_error(exc)
        # a run leaves the last publish whole and its next run completes the work; other commands
        # only wrote the named files
        after = " (the next run completes what this one could not write)" if args.command == "run" else ""
        print(f"keyaccounts: error: {exc.strerror}{where}{after}", file=sys.stderr)
        return 3
    except Exception as exc:
        text = str(exc)
        for fault in ("No space left on device", "Read-only file system", "Permission denied"):
            if fault in text:  # a resource fault reported by DuckDB or dbt, not a bug
                print(f"keyaccounts: error: {fault} ({text.splitlines()[0][:200]})", file=sys.stderr)
                return 3
        return _internal_error(exc)


if __name__ == "__main__":
    sys.exit(main())
