"""The error paths of the `keyaccounts` command-line contract (operations.md).

Every failure exits non-zero with a one-line reason on stderr (plus, at most, a pointer to
the details) and never a bare traceback. These cases all fail before dbt runs, so they are
fast; a successful pipeline run is covered elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from keyaccounts.config import shared_dir

KEYACCOUNTS = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "keyaccounts"
EXAMPLE_INBOX = shared_dir() / "spec" / "example" / "inbox"


def keyaccounts(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    # TMPDIR: a crash log of an internal error lands in the test's folder, not in /tmp
    env = {**os.environ, "TMPDIR": str(cwd)}
    return subprocess.run([str(KEYACCOUNTS), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, exit_code: int) -> str:
    """The contract: the exit status, one `keyaccounts: error:` line, no traceback; returns the line."""
    assert proc.returncode == exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("keyaccounts: error:")]
    assert len(errors) == 1, proc.stderr
    # anything else on stderr is the pointer to the details
    assert all(line.startswith("keyaccounts: details:") for line in lines if line not in errors), proc.stderr
    return errors[0]


@pytest.fixture
def example_inbox(tmp_path) -> Path:
    inbox = tmp_path / "inbox"
    shutil.copytree(EXAMPLE_INBOX, inbox)
    return inbox


@pytest.mark.parametrize("month", ["2024-13", "2024-6", "202406", "June", "2024-00", "2024-05\n"])
def test_run_with_a_malformed_month_exits_3(tmp_path, example_inbox, month):
    """operations.md: `run --through YYYY-MM`; a bad month is a user error, one line, exit 3."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", month, cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert "YYYY-MM" in line
    assert repr(month) in line
    assert not warehouse.exists()  # rejected before the warehouse is touched


def _this_month_in_shanghai() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return f"{datetime.now(ZoneInfo('Asia/Shanghai')):%Y-%m}"


@pytest.mark.parametrize("month", ["this", "2999-12", "9999-12", "0000-01", "1899-12"])
def test_run_for_a_month_not_over_or_before_1900_exits_3(tmp_path, example_inbox, month):
    """metrics.md evaluates M as of the end of its last day, and outputs.md's record is never rewritten:
    a month not over yet (this one, in the business time zone, or years ahead) is refused before
    anything is written, as is a year before 1900 (year 0000 was an internal error)."""
    month = _this_month_in_shanghai() if month == "this" else month
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", month, cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert month in line
    assert ("has not ended yet" in line) == (month >= "1900")
    assert not warehouse.exists()


@pytest.mark.parametrize("name", ["o'brien.duckdb", "main.duckdb", "TEMP.duckdb", 'say"hi".duckdb'])
def test_run_into_a_warehouse_file_dbt_duckdb_cannot_name_exits_3(tmp_path, example_inbox, name):
    """dbt-duckdb names the catalog after the file: a quote broke its SQL, and DuckDB's own catalog names
    (main, temp) cannot be attached; both failed inside dbt (exit 6, dbt's multi-line error)."""
    warehouse = tmp_path / "wh" / name
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-06", cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert "warehouse file name" in line
    assert not warehouse.exists()


def test_a_misnamed_feed_folder_is_named_in_the_error_and_the_ingest_report(tmp_path, example_inbox):
    """Feed folders are matched by name: `Orders/` is not read. The run that then finds no order says
    which folders it did not read and what they probably meant, instead of only "no completed order"."""
    (example_inbox / "orders").rename(example_inbox / "Orders")
    (example_inbox / "survey_responses").rename(example_inbox / "survey")
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh" / "w.duckdb",
                       "--through", "2024-06", cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert "no completed order" in line
    assert "Orders/ (did you mean orders/?)" in line and "survey/ (did you mean survey_responses/?)" in line


def test_run_with_a_missing_inbox_exits_3(tmp_path):
    """operations.md: an unreadable inbox exits non-zero with a one-line reason naming it."""
    missing = tmp_path / "no-such-inbox"
    proc = keyaccounts("run", "--inbox", missing, "--warehouse", tmp_path / "wh.duckdb", "--through", "2024-06",
                       cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert str(missing) in line


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["run", "--inbox", "inbox", "--warehouse", "wh.duckdb"],
        ["status"],
        ["export", "--warehouse", "wh.duckdb", "--month", "2024-06"],
        ["run", "--inbox", "inbox", "--warehouse", "wh.duckdb", "--through", "2024-06", "--reject-threshold", "x"],
        ["no-such-command"],
        ["run", "--inbox", "inbox", "--warehouse", "wh.duckdb", "--through", "2024-06", "--var", "grace_months=[1"],
        ["demo", "--customers", "-5"],
        ["demo", "--years", "0"],
        ["status", "--warehous", "wh.duckdb"],  # no abbreviations: a prefix breaks when an option is added
    ],
    ids=["no-command", "run-bare", "run-no-through", "status-bare", "export-no-out", "threshold-not-number",
         "unknown-command", "var-not-yaml", "demo-negative-customers", "demo-no-years", "abbreviated-option"],
)
def test_usage_errors_exit_2_without_traceback(tmp_path, args):
    """operations.md: a usage error (missing required argument) exits non-zero, one line,
    no traceback; by convention usage errors exit 2."""
    proc = keyaccounts(*args, cwd=tmp_path)
    assert_one_line_error(proc, 2)


def test_var_without_equals_is_a_usage_error(tmp_path, example_inbox):
    """operations.md: `--var NAME=VALUE`; anything else is a usage error (exit 2), one line."""
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh.duckdb", "--through",
                       "2024-06", "--var", "grace_months", cwd=tmp_path)
    line = assert_one_line_error(proc, 2)
    assert "NAME=VALUE" in line


@pytest.mark.parametrize("given", [[], ["--reason", "late ERP file"], ["--by", "财务总监"]], ids=["none", "no-by", "no-reason"])
def test_restate_without_reason_and_approver_is_a_usage_error(tmp_path, example_inbox, given):
    """A restatement records why and who approved it (outputs.md): without both it is a usage error
    (exit 2), before the warehouse is created."""
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh.duckdb", "--through",
                       "2024-06", "--restate", *given, cwd=tmp_path)
    line = assert_one_line_error(proc, 2)
    assert "--reason and --by" in line
    assert not (tmp_path / "wh.duckdb").exists()


def test_reject_threshold_outside_0_1_exits_3(tmp_path, example_inbox):
    """operations.md: the reject threshold is a share; 1.5 cannot be used (input error, exit 3)."""
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh.duckdb", "--through",
                       "2024-06", "--reject-threshold", "1.5", cwd=tmp_path)
    assert_one_line_error(proc, 3)


def test_status_on_a_missing_warehouse_exits_3(tmp_path):
    """operations.md: `status --warehouse FILE` on a file that does not exist is a user error;
    status only reads, so it does not create the file."""
    warehouse = tmp_path / "missing.duckdb"
    proc = keyaccounts("status", "--warehouse", warehouse, cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert str(warehouse) in line
    assert not warehouse.exists()


def test_export_on_a_missing_warehouse_exits_3(tmp_path):
    """operations.md: `export --warehouse FILE ...` on a file that does not exist is a user error."""
    proc = keyaccounts("export", "--warehouse", tmp_path / "missing.duckdb", "--month", "2024-06",
                       "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_line_error(proc, 3)


@pytest.mark.parametrize("out", ["a-file", "a-file/below"])
def test_an_output_folder_that_is_a_file_exits_3(tmp_path, out):
    """An --out path that is a file (or below one) is a user error: one line naming it, exit 3,
    not an internal error (the OS error is EEXIST or ENOTDIR)."""
    (tmp_path / "a-file").write_text("not a folder\n")
    proc = keyaccounts("import-sample", "ibm_ar", "--out", tmp_path / out,
                       "--data-dir", shared_dir() / "data" / "real", cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert "a-file" in line and "a file is in the way of a folder to write" in line
    assert "next run" not in line  # only a run has a next run that completes its work
    assert not list(tmp_path.glob("keyaccounts-crash*"))


def test_status_on_a_file_that_is_not_a_warehouse_exits_3(tmp_path):
    """operations.md: a warehouse path that is not a DuckDB file is a user error, not a crash."""
    warehouse = tmp_path / "notes.duckdb"
    warehouse.write_text("hello, not a database\n")
    proc = keyaccounts("status", "--warehouse", warehouse, cwd=tmp_path)
    assert_one_line_error(proc, 3)


def test_run_on_a_locked_warehouse_exits_4(tmp_path, example_inbox):
    """operations.md: a locked warehouse exits non-zero with a one-line reason (exit 4, 'in use');
    the run takes nothing while another process holds the file."""
    warehouse = tmp_path / "warehouse.duckdb"
    holder = duckdb.connect(str(warehouse))
    try:
        proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-06",
                           cwd=tmp_path)
        schemas = {r[0] for r in holder.execute("select schema_name from information_schema.schemata").fetchall()}
    finally:
        holder.close()
    line = assert_one_line_error(proc, 4)
    assert "in use" in line
    assert "raw" not in schemas and "audit" not in schemas


@pytest.mark.parametrize("var, hint", [
    ("reporting_currency=C' || 'NY", "three capital letters"),  # would be SQL in the models' literals
    ("reporting_currency=cny", "three capital letters"),
    ("business_time_zone=UTC+8", "IANA time zone"),  # PostgreSQL: 8 hours west of UTC; DuckDB: unknown
    ("business_time_zone=CST", "IANA time zone"),  # PostgreSQL: fixed UTC-6; DuckDB: America/Chicago
    ("business_time_zone=Asia/Shang'hai", "IANA time zone"),
])
def test_text_vars_written_into_sql_are_checked_before_the_run(tmp_path, example_inbox, var, hint):
    """operations.md: SQL is parameterised; the two text vars dbt writes into SQL literals are checked
    for what they are (one line, exit 3, before the warehouse is touched)."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-06",
                       "--var", var, cwd=tmp_path)
    assert hint in assert_one_line_error(proc, 3)
    assert not warehouse.exists()


@pytest.mark.parametrize("var, hint", [
    # a scope name and a number written into SQL (the reviewer's injection read a respondent's phone from raw)
    ("scope_coefficients={\"global' then (select 1) when 'x\": 1.2}", None),
    ("scope_coefficients={global: \"(select 9)\"}", "must map each scope to a number"),
    ("window_months=1) or (1=1", "must be a number"),
    ("window_months=twelve", "must be a number"),
    ("grace_months=1.5", "must be a whole number"),
    ("window_months=0", "must be at least 1"),
    ("value_basis=margin", "must be one of revenue, gross_profit"),
    ("correction_bands=[{min_rate: 0.9}]", "min_rate: number, coefficient: number"),
    ("forecast_horizons=[0]", "at least 1"),
    ("marts_schema=marts; drop schema raw", "must be a schema name"),
    ("tier_a_share=1.5", "0 < tier_a_share <= tier_b_share <= 1"),
    ("grace_months=-1", "must be at least 0"),
])
def test_every_var_in_force_holds_what_it_is_for(var, hint):
    """operations.md: SQL is parameterised. The models write vars into SQL as they are, so each var
    must be what it is for (RunConfig and the DAGs call this before anything runs; exit 3)."""
    import yaml

    from keyaccounts.config import check_dbt_vars
    from keyaccounts.errors import InputError

    name, _, value = var.partition("=")
    if hint is None:  # any text may name a scope: the macro writes it as a quoted literal (test below)
        check_dbt_vars({name: yaml.safe_load(value)})
        return
    with pytest.raises(InputError, match=re.escape(hint)):
        check_dbt_vars({name: yaml.safe_load(value)})


def test_a_scope_named_with_a_quote_is_a_literal_in_sql(tmp_path, example_inbox):
    """A scope holding a quote builds (it broke the build before, and could carry SQL); the other
    scopes keep their coefficients (the example's K1 is global: a = 1.2)."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-05", "--var",
                       "scope_coefficients={global: 1.2, national: 1.1, local: 1.0, \"o'brien\": 2.0}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        a = conn.execute("select distinct a_nature from marts.customer_value_monthly where customer_id = 'K1'").fetchall()
    assert a == [(Decimal("1.2"),)]


@pytest.mark.parametrize("var, hint", [("grace_month=2", "did you mean grace_months?"),
                                       ("no_such_threshold=3", "dbt_project.yml")])
def test_an_unknown_dbt_var_exits_3(tmp_path, example_inbox, var, hint):
    """dbt ignores a var it does not know, so a misspelt threshold would leave the default in
    force without a word: one line, exit 3, before the warehouse is touched."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-06",
                       "--var", var, cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert var.split("=")[0] in line and hint in line
    assert not warehouse.exists()


def test_readers_and_a_run_never_overlap_on_a_duckdb_warehouse(tmp_path, example_inbox):
    """A run reconnects to the DuckDB file between its steps; `status` or `export` opening it in
    such a gap made the run's next step fail. While a run holds its lock (an exclusive flock on
    `<warehouse>.run.lock`, taken here as the run takes it) the readers exit 4 at once; while a
    reader holds it (shared), a run exits 4 at once and takes nothing."""
    import fcntl

    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    with open(str(warehouse) + ".run.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run is on
        for args in (["status"], ["export", "--month", "2024-06", "--out", tmp_path / "out"]):
            line = assert_one_line_error(keyaccounts(*args, "--warehouse", warehouse, cwd=tmp_path), 4)
            assert "being written by a keyaccounts run" in line
        fcntl.flock(lock, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a reader is on
        proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", warehouse, "--through", "2024-06",
                           cwd=tmp_path)
        assert "in use by another keyaccounts run or command" in assert_one_line_error(proc, 4)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from information_schema.schemata "
                            "where schema_name in ('raw', 'audit')").fetchone()[0] == 0
    assert not (tmp_path / "out").exists()


def test_status_after_a_run_that_failed_on_its_inbox_is_not_an_internal_error(tmp_path):
    """operations.md: any failure exits with a one-line reason for a user error, never an
    internal error: `status` after a `run` that stopped on a missing inbox."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    first = keyaccounts("run", "--inbox", tmp_path / "no-such-inbox", "--warehouse", warehouse, "--through",
                        "2024-06", cwd=tmp_path)
    assert first.returncode == 3
    proc = keyaccounts("status", "--warehouse", warehouse, cwd=tmp_path)
    assert "internal error" not in proc.stderr
    assert proc.returncode in (0, 3), proc.stderr


def test_a_bad_duckdb_setting_exits_3_in_one_line(tmp_path, example_inbox):
    """KEYACCOUNTS_DUCKDB_MEMORY_LIMIT (README) is the user's to set; a value DuckDB refuses is one line."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "KEYACCOUNTS_DUCKDB_MEMORY_LIMIT": "lots"}
    proc = subprocess.run([str(KEYACCOUNTS), "run", "--inbox", str(example_inbox), "--warehouse",
                           str(tmp_path / "wh.duckdb"), "--through", "2024-05"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    line = assert_one_line_error(proc, 3)
    assert "memory_limit" in line and "lots" in line


def test_duckdb_settings_reach_every_connection_to_the_warehouse(tmp_path, monkeypatch):
    """The pipeline's own connections use the settings dbt's profile gets (transform.dbt.warehouse_env)."""
    from keyaccounts.transform.dbt import warehouse_env
    from keyaccounts.warehouse import connect

    spill = tmp_path / "spill"
    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_THREADS", "1")
    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY", str(spill))
    conn = connect(tmp_path / "wh.duckdb")
    try:
        threads, limit, temp = conn.execute("select current_setting('threads'), current_setting('memory_limit'), "
                                            "current_setting('temp_directory')").fetchone()
    finally:
        conn.close()
    assert (threads, temp) == (1, str(spill)) and limit.startswith("286")  # 300 MB = 286.1 MiB
    env = warehouse_env(tmp_path / "wh.duckdb")
    assert env["KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY"] == str(spill) and env["KEYACCOUNTS_DUCKDB_THREADS"] == "1"
    # unset, DuckDB spills beside the warehouse file
    monkeypatch.delenv("KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY")
    assert warehouse_env(tmp_path / "wh.duckdb")["KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY"] == str(tmp_path / "wh.duckdb.tmp")


def test_a_warehouse_past_a_million_rows_builds_one_model_at_a_time(tmp_path, monkeypatch):
    """docs/benchmarks.md (session 9): DuckDB's memory limit (5GB unless set) is shared by the models
    dbt builds side by side, so once a raw feed passes LARGE_FEED_ROWS rows dbt builds one at a time;
    KEYACCOUNTS_THREADS, when set, wins."""
    from keyaccounts.transform.dbt import LARGE_FEED_ROWS, dbt_env, models_at_once
    from keyaccounts.warehouse import connection

    monkeypatch.delenv("KEYACCOUNTS_THREADS", raising=False)
    monkeypatch.delenv("KEYACCOUNTS_DUCKDB_MEMORY_LIMIT", raising=False)
    wh = tmp_path / "wh.duckdb"
    with connection(wh) as conn:
        assert conn.execute("select current_setting('memory_limit')").fetchone()[0] == "4.6 GiB"  # 5 GB
        conn.execute("create schema raw")
        conn.execute("create table raw.customers as select range as id from range(10)")
        conn.execute("create table raw.orders as select range as id from range(?)", [LARGE_FEED_ROWS])
    assert models_at_once(wh) is None  # at the threshold: profiles.yml's two
    with connection(wh) as conn:
        conn.execute("insert into raw.orders values (-1)")
    assert models_at_once(wh) == 1
    monkeypatch.setenv("KEYACCOUNTS_THREADS", "2")
    assert models_at_once(wh) is None
    monkeypatch.delenv("KEYACCOUNTS_THREADS")
    assert models_at_once(tmp_path / "empty.duckdb") is None  # no raw schema yet
    assert models_at_once("postgresql://postgres@127.0.0.1:5432/postgres") is None  # never opened
    assert dbt_env(tmp_path / "wh.duckdb", tmp_path, threads=1)["KEYACCOUNTS_THREADS"] == "1"
    assert "KEYACCOUNTS_THREADS" not in dbt_env(tmp_path / "wh.duckdb", tmp_path)


def test_the_build_of_a_large_warehouse_runs_one_model_at_a_time(tmp_path, example_inbox, monkeypatch):
    """The pipeline's dbt build takes models_at_once's answer: with the threshold below the worked
    example's row counts, every model and test of a real build runs on one dbt thread."""
    import json

    import keyaccounts.transform.dbt as dbt_module
    from keyaccounts.config import RunConfig
    from keyaccounts.pipeline import ingest_task, transform_task

    monkeypatch.delenv("KEYACCOUNTS_THREADS", raising=False)
    monkeypatch.setattr(dbt_module, "LARGE_FEED_ROWS", 10)  # the example's orders feed has more
    cfg = RunConfig(inbox=example_inbox, warehouse=tmp_path / "wh.duckdb", through="2024-06")
    ingest_task(cfg, "run-1")
    transform_task(cfg)
    results = json.loads((cfg.dbt_state_dir / "target" / "run_results.json").read_text(encoding="utf-8"))["results"]
    assert len(results) > 100 and all(r["status"] in ("success", "pass") for r in results)
    # the models and tests (the on-run-start hook runs on dbt's main thread before them)
    assert len({r["thread_id"] for r in results if not r["unique_id"].startswith("operation.")}) == 1


def test_the_bi_copy_connection_gets_the_run_settings(tmp_path, monkeypatch):
    """The BI copy is loaded through a second DuckDB instance: without the settings it would take
    DuckDB's default memory limit (80% of the RAM) beside the warehouse's; it gets a quarter of
    the run's limit, as the warehouse's instance keeps its buffers open beside it."""
    import keyaccounts.publish.bi_copy as bi_copy
    from keyaccounts.publish.pending import PendingFiles
    from keyaccounts.warehouse import connect

    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_THREADS", "1")
    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_MEMORY_LIMIT", "300MB")
    seen = []
    real_connect = duckdb.connect

    def spy(database=":memory:", *args, **kwargs):
        conn = real_connect(database, *args, **kwargs)
        seen.append(conn.execute("select current_setting('threads'), current_setting('memory_limit'), "
                                 "current_setting('temp_directory')").fetchone())
        return conn

    wh = tmp_path / "wh.duckdb"
    conn = connect(wh)
    try:
        conn.execute("create schema marts; create table marts.t as select 1 as x")
        monkeypatch.setattr(bi_copy.duckdb, "connect", spy)
        bi_copy.stage_bi_copy(conn, wh, "run-1", PendingFiles())
    finally:
        conn.close()
    assert len(seen) == 1
    threads, limit, temp = seen[0]
    # a quarter of the run's limit: 300 MB / 4, rounded down to whole MiB
    assert threads == 1 and limit == "71.0 MiB" and temp == str(tmp_path / "wh.duckdb.tmp.bi_copy")
    # DuckDB creates only the last folder of the path when it spills: its parent must exist
    assert Path(temp).parent.is_dir()


def test_dbt_opens_duckdb_with_the_temp_directory_once(tmp_path):
    """dbt-duckdb runs every `settings` entry as a SET on each new cursor, and DuckDB refuses to
    switch the temp directory once it has spilled there: the L benchmark failed that way mid-build.
    So the temp directory is a `config_options` entry, given once when the file is opened."""
    import yaml

    from keyaccounts.config import DBT_PROJECT_DIR

    target = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())["keyaccounts"]["outputs"]["duckdb"]
    assert "temp_directory" not in target["settings"]
    assert "KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY" in target["config_options"]["temp_directory"]
    # and DuckDB indeed refuses the switch once it spilled (the behaviour this guards against)
    conn = duckdb.connect(config={"memory_limit": "64MB", "threads": "1"})
    try:
        conn.execute("set temp_directory = ?", [str(tmp_path / "spill")])
        conn.execute("create table t as select range as i, repeat('x', 100) as s from range(2000000)")
        conn.execute("select * from t order by s desc, i").fetchall()  # spills past 64 MB
        with pytest.raises(duckdb.Error, match="temporary directory"):
            conn.execute("set temp_directory = ?", [str(tmp_path / "spill")])
    finally:
        conn.close()


@pytest.mark.parametrize("case", ["empty inbox", "a feed's folder as inbox", "month before the data"])
def test_nothing_to_evaluate_exits_3_before_the_build(tmp_path, example_inbox, case):
    """An inbox without customers or completed orders, or a --through before the earliest
    completed order, evaluates no customer (metrics.md "Population"): a user's mistake, one line
    and exit 3, before dbt runs (it used to end in the row-count check, exit 8)."""
    inbox, through = example_inbox, "2024-06"
    if case == "empty inbox":
        inbox = tmp_path / "empty"
        inbox.mkdir()
    elif case == "a feed's folder as inbox":
        inbox = example_inbox / "orders"
    else:
        # the example's customers are signed from 2021; its earliest completed order is of 2023-01-15
        through = "2022-12"
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    proc = keyaccounts("run", "--inbox", inbox, "--warehouse", warehouse, "--through", through, cwd=tmp_path)
    line = assert_one_line_error(proc, 3)
    assert "nothing to evaluate" in line
    if case == "a feed's folder as inbox":
        assert "are not read" in line and "orders/" in line
    if case == "month before the data":
        assert "2023-01-15" in line and "first month that can be evaluated is 2023-01" in line
    assert not (warehouse.parent / ".dbt").exists()  # dbt never ran


def test_a_warehouse_opened_by_another_process_during_dbt_is_a_lock_not_a_failed_model(tmp_path, monkeypatch):
    """A BI tool that opens the DuckDB file itself (instead of published/) while dbt has it
    closed makes dbt's open fail: that is the warehouse in use (exit 4, retried by Airflow), not a
    broken model (exit 6)."""
    from keyaccounts.errors import WarehouseLocked
    from keyaccounts.transform.dbt import run_dbt

    monkeypatch.setenv("KEYACCOUNTS_DUCKDB_CONNECT_ATTEMPTS", "1")  # no waiting for it (next test)
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(warehouse)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseLocked) as locked:
            run_dbt("build", warehouse, tmp_path / "dbt", {"through_month": "2024-06"}, extra=["--select", "stg_fx_rates"])
    finally:
        holder.kill()
        holder.wait()
    assert "opened by another process during the dbt build" in str(locked.value)
    assert locked.value.exit_code == 4


def test_dbt_waits_for_a_warehouse_another_process_holds_for_a_moment(tmp_path):
    """profiles.yml: dbt-duckdb opens the file again after 1, 2, 4 s, so a BI tool that holds the
    warehouse for a few seconds while dbt starts does not fail the build (Airflow would retry the task,
    but only after a minute's back-off). The holder lets go 3 s after dbt has started connecting (its
    "Concurrency" line comes right before the first open)."""
    import threading

    from keyaccounts.transform.dbt import run_dbt

    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(warehouse)],
                              stdout=subprocess.PIPE, text=True)
    log = tmp_path / "dbt" / "logs" / "dbt.log"
    released = {}

    def release_after_dbt_starts_connecting():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (log.exists() and "Concurrency:" in log.read_text()):
            time.sleep(0.1)
        time.sleep(3)
        released["at"] = time.monotonic()
        holder.kill()
        holder.wait()

    try:
        assert holder.stdout.readline().strip() == "open"
        watcher = threading.Thread(target=release_after_dbt_starts_connecting)
        watcher.start()
        run_dbt("build", warehouse, tmp_path / "dbt", {"through_month": "2024-06"}, extra=["--select", "programme_packages"])
        finished = time.monotonic()
        watcher.join()
    finally:
        holder.kill()
        holder.wait()
    assert finished > released["at"]  # the build went on after the holder let go, not before
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from information_schema.tables where table_name = 'programme_packages'"
                           ).fetchone() == (1,)


def test_an_internal_error_writes_its_traceback_to_a_private_file(tmp_path, monkeypatch, capsys):
    """A bug (not a user error) prints one line and the path of a crash log of its own, readable by
    this user only; a temp folder it cannot write to still gives one line, not a second traceback."""
    import stat
    import tempfile

    from keyaccounts import cli

    def broken(args):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "status", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["status", "--warehouse", "wh.duckdb"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "keyaccounts: internal error: RuntimeError: a bug"
    log = Path(err[1].removeprefix("keyaccounts: details: "))
    assert log.parent == tmp_path and "RuntimeError: a bug" in log.read_text(encoding="utf-8")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-a-folder"))
    (tmp_path / "not-a-folder").write_text("")
    assert cli.main(["status", "--warehouse", "wh.duckdb"]) == 1
    assert capsys.readouterr().err.splitlines()[1].startswith("keyaccounts: details: not written")


def test_a_warehouse_path_ending_in_a_slash_names_a_folder_and_exits_3(tmp_path, example_inbox):
    """`--warehouse DIR/` of a folder that does not exist yet made a DuckDB *file* of that name and
    wrote exports/ and published/ into its parent: one line, exit 3, nothing created."""
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", f"{tmp_path / 'new'}/", "--through", "2024-06",
                       cwd=tmp_path)
    assert "names a folder" in assert_one_line_error(proc, 3)
    assert not (tmp_path / "new").exists() and not (tmp_path / "exports").exists()


@pytest.mark.parametrize("warehouse", [
    "postgresql//postgres@127.0.0.1:5432/wh",  # the colon forgotten
    "PostgreSQL://postgres@127.0.0.1:5432/wh",
    "postgresql+psycopg2://postgres:Pw0rd-x7@127.0.0.1:5432/wh",  # pragma: allowlist secret
    "mysql://root@127.0.0.1:3306/wh",  # DuckDB would try to download its MySQL extension
])
@pytest.mark.parametrize("command", ["run", "status"])
def test_a_mistyped_warehouse_url_is_refused_not_made_a_duckdb_file(tmp_path, example_inbox, warehouse, command):
    """A --warehouse that is a URL but not postgresql://… was taken as a DuckDB path: the run created
    ./postgresql/postgres@127.0.0.1:5432/wh, published there and exited 0. It is a usage error now."""
    args = ["--inbox", example_inbox, "--through", "2024-06", "--exports", tmp_path / "x"] if command == "run" else []
    proc = keyaccounts(command, "--warehouse", warehouse, *args, cwd=tmp_path)
    line = assert_one_line_error(proc, 2)
    assert "neither a DuckDB file path nor a postgresql://" in line and "Pw0rd" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox"]  # nothing created


def test_a_database_named_in_a_path_is_still_a_duckdb_file(tmp_path):
    """Only URL-like text is refused: a folder named after PostgreSQL holds a DuckDB file like any other."""
    from keyaccounts.warehouse import check_warehouse_text

    for path in ("postgres-mirror/wh.duckdb", "a@b/wh.duckdb", "postgres@backup/wh.duckdb", "/data/a:b/wh.duckdb",
                 "postgresql://postgres@127.0.0.1:5432/wh"):
        assert check_warehouse_text(path) == path
    for url in ("mysql:wh", "md:wh", "postgresql//postgres:p:w@d@127.0.0.1:5432/wh"):  # pragma: allowlist secret
        with pytest.raises(ValueError) as refused:
            check_warehouse_text(url)
        assert "p:w@d" not in str(refused.value) and "w@d" not in str(refused.value)


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="root reads any folder")
def test_an_inbox_the_user_may_not_list_exits_3_naming_it(tmp_path, example_inbox):
    """operations.md: an unreadable inbox exits non-zero with a one-line reason; it said "Permission denied"
    and left a warehouse behind. As root (who reads any folder) the CLI runs without DAC override."""
    example_inbox.chmod(0o000)
    try:
        cmd = ["run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh" / "wh.duckdb", "--through", "2024-06"]
        if os.geteuid() == 0:
            env = {**os.environ, "TMPDIR": str(tmp_path)}
            proc = subprocess.run(["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                                   "--bounding-set=-dac_override,-dac_read_search", str(KEYACCOUNTS), *map(str, cmd)],
                                  capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        else:
            proc = keyaccounts(*cmd, cwd=tmp_path)
    finally:
        example_inbox.chmod(0o755)
    line = assert_one_line_error(proc, 3)
    assert f"inbox {example_inbox} is not a readable folder" in line
    assert not (tmp_path / "wh").exists()


def test_a_file_quarantined_whole_is_named_on_stderr_and_the_run_publishes(tmp_path, example_inbox):
    """sources.md: a file missing a required column is quarantined whole and the other files still load.
    It no longer stops the run (the reject threshold counts rows checked one by one), so the run says it
    aloud: the file, its reason and how many rows were not loaded, beside the ingest table."""
    (example_inbox / "payments" / "part-0099.csv").write_text(
        "payment_id,invoice_id,customer_id,payment_date,currency,paid,method,updated_at\n"
        "P-RENAMED,INV-1,K1,2024-06-01,CNY,100,bank_transfer,2024-06-02T10:00:00+08:00\n", encoding="utf-8")
    proc = keyaccounts("run", "--inbox", example_inbox, "--warehouse", tmp_path / "wh" / "w.duckdb",
                       "--through", "2024-06", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("file quarantined whole, none of its rows loaded: payments/part-0099.csv (missing_columns: missing "
            "required column(s): amount; none of its 1 row(s) loaded)") in proc.stderr
