"""outputs.md publishing: write-audit-publish with GX checks, the append-only record with
restatements, exports (BOM, formula cells neutralised), the BI read path, the finance
drill-down and the HTML report (rendered in headless Chromium)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from conftest import one, rows, run, write_inbox
from keyaccounts.checks import ChecksFailed
from keyaccounts.config import STATE_DIR, RunConfig
from keyaccounts.pipeline import check_task, ingest_task, publish_task, transform_task

TS = "2024-07-05T08:00:00+08:00"


@pytest.fixture
def example_wh(example_dir, tmp_path):
    """The worked example published through 2024-05."""
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    wh = tmp_path / "wh.duckdb"
    run(inbox, wh, "2024-05")
    return inbox, wh


def test_broken_mart_blocks_publish_and_old_publish_stays_readable(example_wh):
    inbox, wh = example_wh
    bi = wh.parent / "published" / "marts.duckdb"
    before_bi = rows(bi, "select * from marts.customer_tier_monthly order by all")
    cfg = RunConfig(inbox=inbox, warehouse=wh, through="2024-06")
    ingest_task(cfg, "run-broken")
    transform_task(cfg)
    with duckdb.connect(str(wh)) as conn:  # inject a broken mart into the build
        conn.execute("update marts_build.customer_tier_monthly set collection_rate_12m = 1.5 "
                     "where customer_id = 'K2' and eval_month = '2024-06'")
    with pytest.raises(ChecksFailed) as failed:
        check_task(cfg)
    message = str(failed.value)
    assert "expect_column_values_to_be_between(collection_rate_12m)" in message and "K2" in message
    # nothing of 2024-06 reached the published tables, the record or the BI copy
    assert one(wh, "select max(eval_month) as m from marts.customer_tier_monthly")["m"] == "2024-05"
    assert [r["eval_month"] for r in rows(wh, "select distinct eval_month from marts.published_tiers")] == ["2024-05"]
    assert rows(bi, "select * from marts.customer_tier_monthly order by all") == before_bi
    assert not (wh.parent / "exports" / "tiers_2024-06.csv").exists()


def test_identical_rerun_adds_no_row_to_published_tiers(example_wh):
    inbox, wh = example_wh
    count = one(wh, "select count(*) as n from marts.published_tiers")["n"]
    assert count == 6  # six customers in 2024-05
    # rebuilt and published again (a full refresh never takes the up-to-date shortcut of a plain rerun)
    run(inbox, wh, "2024-05", full_refresh=True)
    assert one(wh, "select count(*) as n from marts.published_tiers")["n"] == count
    assert [r["action"] for r in rows(wh, "select action from audit.publish_log order by published_at")] == \
        ["published", "unchanged"]


def test_the_next_run_of_another_month_puts_files_a_killed_publish_left_in_place(example_wh):
    """A run killed after its publish committed leaves its files under temporary names (the state below);
    the next run, here of the next month, writes them from the record (operations.md: the next run
    completes the work) instead of sweeping them away."""
    inbox, wh = example_wh
    exports = wh.parent / "exports"
    published = {p.name: p.read_bytes() for p in (exports / "tiers_2024-05.csv", exports / "report_2024-05.html")}
    for name in published:
        (exports / name).rename(exports / (name + ".tmp"))
    shutil.rmtree(exports / "managers" / "2024-05")
    run(inbox, wh, "2024-06")
    assert (exports / "tiers_2024-05.csv").read_bytes() == published["tiers_2024-05.csv"]  # from the record
    # the report of version 1 (its back-test section now also sees 2024-06, so not the same bytes)
    assert "版本 version 1 ·" in (exports / "report_2024-05.html").read_text(encoding="utf-8")
    assert (exports / "managers" / "2024-05").is_dir() and (exports / "tiers_2024-06.csv").is_file()
    assert sorted(p.name for p in exports.glob("*.tmp")) == []
    # the record holds one version of each month: the earlier month's files came from it, not a republish
    assert [(r["eval_month"], r["action"]) for r in rows(
        wh, "select eval_month, action from audit.publish_log order by published_at")] == \
        [("2024-05", "published"), ("2024-06", "published")]


def test_an_airflow_rerun_of_a_corrected_published_month_says_how_many_customers_differ(example_wh, capfd):
    """As `keyaccounts run` prints it, the monthly DAG's publish logs that the rebuilt month differs from
    the record it keeps (the marts follow corrected sources; the record changes only by a restatement)."""
    from keyaccounts import orchestration as ka

    inbox, wh = example_wh
    # a late order of 5,000,000 makes K6 (V 64,400.00, rank 5, tier C in 2024-05) pass K1 (1,656,000.00)
    (inbox / "orders" / "part-0099.csv").write_text(
        "order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at\n"
        "O-K6-LATE,K6,,2024-05-20,completed,CNY,5000000,5000000,,2024-06-03T09:00:00+08:00\n", encoding="utf-8")
    cfg = RunConfig(inbox=inbox, warehouse=wh, through="2024-05")
    ingest_task(cfg, "late-file")
    transform_task(cfg)
    check_task(cfg)
    capfd.readouterr()
    ka.publish(ka.settings_from_config(cfg), "late-file")
    logged = "".join(capfd.readouterr())  # Airflow's logging (structlog) writes the task log to stderr
    # the month's total V grows by K6's new V, so every one of the six customers' share_before changes
    assert "in which 6 customers differ from the record" in logged and "restate" in logged
    assert one(wh, "select tier from marts.customer_tier_monthly where customer_id = 'K6' and eval_month = '2024-05'"
               )["tier"] == "A"  # the marts show the rebuilt month
    assert one(wh, "select max(version) as v from marts.published_tiers where eval_month = '2024-05'")["v"] == 1


def test_restatement_appends_a_version_and_the_per_customer_diff(example_wh):
    inbox, wh = example_wh
    run(inbox, wh, "2024-06")
    exports = wh.parent / "exports"

    def report_and_managers() -> dict[str, bytes]:
        files = [exports / "report_2024-06.html", *sorted((exports / "managers" / "2024-06").iterdir())]
        return {p.name: p.read_bytes() for p in files}

    published = report_and_managers()
    # a late delivery: K6 gets a completed order of 2,000,000 in June 2024
    write_inbox(inbox, {"orders/part-0003.csv": f"""
        order_id,customer_id,contract_id,order_date,status,currency,list_amount,net_amount,cost_amount,updated_at
        O-K6-LATE,K6,,2024-06-20,completed,CNY,2000000,2000000,,{TS}
    """})
    cfg = RunConfig(inbox=inbox, warehouse=wh, through="2024-06")
    from keyaccounts.pipeline import run_pipeline

    run_pipeline(cfg)
    assert cfg.last_publish.action == "unchanged" and cfg.last_publish.differs_from_record == 6
    # outputs.md: what was published is never rewritten in place: the report and the managers' files
    # are built around the record from the marts, which now hold the rebuilt month, so they are kept
    assert report_and_managers() == published
    # and a report re-written by `export` shows the record's month, not the rebuilt marts' (its header
    # and charts named version 1 beside the marts' tier mix)
    def mix(sql: str) -> str:
        counts = {r["tier"]: r["n"] for r in rows(wh, sql)}
        return " · ".join(f"{t}: {counts.get(t, 0)}" for t in "ABC")

    recorded = mix("select tier, count(*) as n from marts.published_tiers where eval_month = '2024-06' group by tier")
    rebuilt = mix("select tier, count(*) as n from marts.customer_tier_monthly where eval_month = '2024-06' group by tier")
    assert recorded != rebuilt  # K6 is C in the record, A in the rebuilt month
    from keyaccounts.cli import main

    assert main(["export", "--warehouse", str(wh), "--month", "2024-06", "--out", str(wh.parent / "x")]) == 0
    rewritten = (wh.parent / "x" / "report_2024-06.html").read_text(encoding="utf-8")
    assert f"客户 customers 6 · {recorded}</p>" in rewritten and "版本 version 1 ·" in rewritten
    v1 = rows(wh, "select * exclude (published_at, run_id) from marts.published_tiers where eval_month = '2024-06' "
                  "order by customer_id")
    restate = RunConfig(inbox=inbox, warehouse=wh, through="2024-06", restate=True,
                        restate_reason="late ERP delivery", restated_by="财务总监")
    run_pipeline(restate)
    assert restate.last_publish.action == "restated" and restate.last_publish.version == 2
    restated = report_and_managers()
    assert restated["report_2024-06.html"] != published["report_2024-06.html"]  # the restated month's
    assert "版本 version 2 ·" in restated["report_2024-06.html"].decode("utf-8")
    # a report of another version (a run killed before renaming it into place) is written again
    (exports / "report_2024-06.html").write_bytes(published["report_2024-06.html"])
    again = RunConfig(inbox=inbox, warehouse=wh, through="2024-06", full_refresh=True)
    run_pipeline(again)
    assert again.last_publish.action == "unchanged"
    # the version it names (a full-refresh rebuild is compared by content elsewhere, not byte for byte here)
    assert "版本 version 2 ·" in (exports / "report_2024-06.html").read_text(encoding="utf-8")
    # version 1 is kept as it was
    assert rows(wh, "select * exclude (published_at, run_id) from marts.published_tiers "
                    "where eval_month = '2024-06' and version = 1 order by customer_id") == v1
    changes = {r["customer_id"]: r for r in rows(wh, "select * from marts.published_tier_changes")}
    # K6: V = 50,000 + 14,400 + 2,000,000 = 2,064,400, rank 1, raw A, promoted from C
    k6 = changes["K6"]
    assert (k6["old_tier"], k6["new_tier"], k6["change"]) == ("C", "A", "changed")
    assert k6["new_value_score"] == D("2064400.00") and k6["old_value_score"] == D("64400.00")
    assert "tier" in k6["changed_columns"].split(",") and "value_rank" in k6["changed_columns"].split(",")
    assert (k6["restated_by"], k6["reason"], k6["version"]) == ("财务总监", "late ERP delivery", 2)
    # everyone else moved down one rank: changed, but not in tier
    assert changes["K1"]["old_tier"] == changes["K1"]["new_tier"] == "A"
    exported = (wh.parent / "exports" / "tiers_2024-06.csv").read_text(encoding="utf-8-sig")
    assert ",2," in exported.splitlines()[1] or "2" in next(csv.DictReader(io.StringIO(exported)))["version"]

    # operations.md: the same restatement again (an Airflow retry) changes nothing the second time
    restate_again = RunConfig(inbox=inbox, warehouse=wh, through="2024-06", restate=True,
                              restate_reason="late ERP delivery", restated_by="财务总监", full_refresh=True)
    run_pipeline(restate_again)
    assert (restate_again.last_publish.action, restate_again.last_publish.version) == ("unchanged", 2)
    assert one(wh, "select max(version) as v from marts.published_tiers where eval_month = '2024-06'")["v"] == 2
    # a restatement that only changes an account manager says so, per customer
    write_inbox(inbox, {"customers/part-0009.csv": """
        customer_id,customer_name,industry,scope,region,account_manager,signed_on,updated_at
        K3,蓝海科技,technology,local,South,新经理,2022-03-01,2024-07-09T08:00:00+08:00
    """})
    k3 = one(wh, "select * from marts.published_tiers where customer_id = 'K3' and version = 2")
    assert k3["account_manager"] != "新经理"
    manager = RunConfig(inbox=inbox, warehouse=wh, through="2024-06", restate=True,
                        restate_reason="account handed over", restated_by="销售总监")
    run_pipeline(manager)
    assert (manager.last_publish.action, manager.last_publish.version) == ("restated", 3)
    assert manager.last_publish.changed_customers == 1
    assert rows(wh, "select customer_id, changed_columns, old_tier, new_tier from marts.published_tier_changes "
                    "where version = 3") == [{"customer_id": "K3", "changed_columns": "account_manager",
                                              "old_tier": k3["tier"], "new_tier": k3["tier"]}]


def test_csv_export_has_bom_and_neutralised_formula_cells(tmp_path):
    names = ["=HYPERLINK(\"http://x\")", "+86 Trading", "-Minus Ltd", "@Sum Corp", "正常客户",
             "\t=SUM(A1)"]  # a tab before a formula is one too (OWASP)
    customers = "\n".join(f'C{i},"{n.replace(chr(34), chr(34) * 2)}",retail,local,East,王敏,2024-01-01,{TS}'
                          for i, n in enumerate(names))
    orders = "\n".join(f"O{i},C{i},,2024-03-0{i + 1},completed,CNY,100,100,,{TS}" for i in range(len(names)))
    inbox = write_inbox(tmp_path / "inbox", {
        "customers/part-0001.csv": "customer_id,customer_name,industry,scope,region,account_manager,signed_on,"
                                   "updated_at\n" + customers,
        "orders/part-0001.csv": "order_id,customer_id,contract_id,order_date,status,currency,list_amount,"
                                "net_amount,cost_amount,updated_at\n" + orders,
    })
    wh = tmp_path / "wh.duckdb"
    run(inbox, wh, "2024-03")
    raw = (tmp_path / "exports" / "tiers_2024-03.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    exported = {r["customer_id"]: r["customer_name"]
                for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
    assert exported == {"C0": "'" + names[0], "C1": "'+86 Trading", "C2": "'-Minus Ltd", "C3": "'@Sum Corp",
                        "C4": "正常客户", "C5": "'\t=SUM(A1)"}
    # the tables themselves keep the names unchanged
    assert {r["customer_name"] for r in rows(wh, "select customer_name from marts.dim_customer")} == set(names)


def test_bi_copy_is_readable_while_the_warehouse_is_locked(example_wh):
    _, wh = example_wh
    holder = duckdb.connect(str(wh))  # the pipeline holds the single writer lock
    try:
        script = ("import duckdb,sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                  "print(c.sql('select count(*) from marts.customer_tier_monthly').fetchone()[0]); "
                  "print(c.sql(\"select count(*) from read_parquet(sys.argv[2] || '/customer_tier_monthly.parquet')\""
                  ".replace('sys.argv[2]', repr(sys.argv[2]))).fetchone()[0])")
        proc = subprocess.run([sys.executable, "-c", script, str(wh.parent / "published" / "marts.duckdb"),
                               str(wh.parent / "published" / "parquet")], capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["88", "88"]  # 2023-01..2024-05: K1-K5 x 17 months + K6 from 2024-03 (3)
    tables = {r["table_name"] for r in rows(wh.parent / "published" / "marts.duckdb",
                                            "select table_name from information_schema.tables")}
    assert "customer_tier_monthly" in tables and "published_tiers" in tables
    assert not tables & {"orders", "stg_orders", "int_raw_tiers", "manifest"}  # marts only


def test_bi_copy_equals_the_published_marts_in_types_and_rows(example_wh):
    """outputs.md: the read path holds the `marts` schema with the same table names; a BI tool
    must get the same column types and values as the warehouse (money stays decimal)."""
    _, wh = example_wh
    published = wh.parent / "published"
    with duckdb.connect(str(wh), read_only=True) as w, \
            duckdb.connect(str(published / "marts.duckdb"), read_only=True) as b:
        cols = "select table_name, column_name, data_type from information_schema.columns where table_schema = ? " \
               "order by table_name, ordinal_position"
        assert b.execute(cols, ["main"]).fetchall() == w.execute(cols, ["marts"]).fetchall()
        tables = [r[0] for r in w.execute("select table_name from information_schema.tables "
                                          "where table_schema = 'marts' order by 1").fetchall()]
        assert "customer_value_monthly" in tables and "published_tiers" in tables
        for t in tables:
            want = w.execute(f"select * from marts.{t} order by all").fetchall()
            assert b.execute(f"select * from main.{t} order by all").fetchall() == want, t
            parquet = str(published / "parquet" / f"{t}.parquet")
            assert w.execute("select * from read_parquet(?) order by all", [parquet]).fetchall() == want, t


def _detail_mismatches(wh: Path) -> list[dict]:
    """customer-months of the detail whose sums differ from customer_receivables_monthly"""
    return rows(wh, """
        select m.customer_id, m.eval_month
        from marts.customer_receivables_monthly m
        join (select customer_id, eval_month, sum(amount) as billed, sum(collected_by_cutoff) as collected,
                     sum(paid_on_time) as on_time
              from marts.customer_receivables_detail group by all) d using (customer_id, eval_month)
        where d.billed <> m.billed_due_12m or d.collected <> m.collected_12m or d.on_time <> m.paid_on_time_12m""")


def _months_with_invoices_due(wh: Path) -> set[str]:
    return {r["eval_month"] for r in rows(wh, "select distinct eval_month from marts.customer_receivables_monthly "
                                              "where billed_due_12m > 0")}


def test_receivables_detail_reconciles_to_the_cent(example_wh):
    _, wh = example_wh
    assert _detail_mismatches(wh) == []
    # by default the detail covers the last 12 evaluation months: 2023-06 .. 2024-05
    detail_months = {r["eval_month"] for r in rows(wh, "select distinct eval_month from marts.customer_receivables_detail")}
    last_12 = {f"2023-{m:02d}" for m in range(6, 13)} | {f"2024-{m:02d}" for m in range(1, 6)}
    assert detail_months == _months_with_invoices_due(wh) & last_12 == last_12
    # K5 in 2024-05: 12 invoices of 3,000 due in W, the one due 2024-05-15 is paid 2024-06-04 (after the cut-off)
    k5 = rows(wh, "select * from marts.customer_receivables_detail where customer_id = 'K5' and eval_month = '2024-05' "
                  "and invoice_id = 'I-K5-202404'")[0]
    assert k5["collected_by_cutoff"] == D("0") and k5["days_past_due"] == 16 and k5["aging_bucket"] == "overdue_1_30"


def test_receivables_detail_of_every_month_when_asked(example_dir, tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    wh = tmp_path / "wh.duckdb"
    run(inbox, wh, "2024-05", dbt_vars={"receivables_detail_months": None})
    assert _detail_mismatches(wh) == []
    detail_months = {r["eval_month"] for r in rows(wh, "select distinct eval_month from marts.customer_receivables_detail")}
    assert detail_months == _months_with_invoices_due(wh) and len(detail_months) > 12


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed by the test setup when missing (root, Debian registry)."""
    path = shutil.which("chromium")
    if path is None:
        proc = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                              "chromium fonts-noto-cjk", shell=True, capture_output=True, text=True, timeout=900)
        path = shutil.which("chromium")
        assert path, f"could not install chromium: {proc.stderr[-2000:]}"
    return path


def test_report_renders_in_headless_chromium(example_wh, chromium, tmp_path):
    _, wh = example_wh
    report = wh.parent / "exports" / "report_2024-05.html"
    text = report.read_text(encoding="utf-8")
    # self-contained: plotly.js is inline in the head (this machine has no network, so the render
    # below also proves nothing is fetched)
    head = text.split("</head>")[0]
    assert "<script>" in head and "src=" not in head.split("<script>")[0]
    assert "大客户分级报告" in text and "Harbor Logistics" in text
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 4  # every chart was drawn by plotly.js
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()
                      or "Uncaught" in line]
    assert console_errors == []
    shots = STATE_DIR / "test-artifacts"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report_2024-05.png"
    subprocess.run([chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000


def test_report_lists_every_tier_move_and_counts_the_migration(example_dir, tmp_path):
    """outputs.md: the report shows the migration matrix as a heat map and the top movers. From the
    spec's worked example (expected_customer_tier_monthly.csv, 2024-05): K4 is demoted A -> B, and
    everyone else keeps their tier; an approved override then moves K6 from C to A in that month
    (metrics.md: change `override`), which is a move too."""
    import json
    import re

    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    write_inbox(inbox, {"tier_overrides/part-0001.csv": """
        customer_id,eval_month,tier,reason,approved_by,updated_at
        K6,2024-05,A,战略客户,张总,2024-06-01T09:00:00+08:00
    """})
    wh = tmp_path / "wh.duckdb"
    run(inbox, wh, "2024-05")
    text = (tmp_path / "exports" / "report_2024-05.html").read_text(encoding="utf-8")
    movers = text.split("Top movers</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<tr><td>(K\d)</td>", movers) == ["K4", "K6"]  # by rank: K4 4th, K6 5th
    assert "<td>demoted</td>" in movers and "<td>override</td>" in movers
    # the heat map's counts, rows from A, B, C and columns to A, B, C: A->A K1 K2 K3, A->B K4, C->A K6, C->C K5
    heat = next(f for f in re.findall(r'Plotly\.newPlot\(\s*"chart-3",\s*(\[.*?\]),\s*\{', text, re.S))
    assert json.loads(heat)[0]["z"] == [[3, 1, 0], [0, 0, 0], [1, 0, 1]]


def test_the_reports_pareto_lines_are_the_tier_lines_in_force(example_dir, tmp_path):
    """outputs.md: the Pareto curve of V with the 80% and 95% lines, which are the tier lines of
    metrics.md (vars tier_a_share, tier_b_share): a run with other lines draws those, and the summary
    mart says which lines each month was built with."""
    wh = tmp_path / "wh.duckdb"
    run(example_dir / "inbox", wh, "2024-05", dbt_vars={"tier_a_share": 0.5, "tier_b_share": 0.9})
    text = (tmp_path / "exports" / "report_2024-05.html").read_text(encoding="utf-8")
    assert '"text":"50% (A)"' in text and '"text":"90% (B)"' in text and "80% (A)" not in text
    assert rows(wh, "select distinct tier_a_share, tier_b_share from marts.tier_summary_monthly") == [
        {"tier_a_share": D("0.5"), "tier_b_share": D("0.9")}]


def test_dim_customer_holds_each_customers_first_order_and_latest_tier(example_wh, example_dir):
    """outputs.md: dim_customer holds the master attributes, the first order date and the current
    tier. Worked out here from the example's files: the winning version of each order (sources.md's
    duplicate rule: latest updated_at, then the later file, then the later line), the earliest
    completed one per customer; the tier of the last month published (expected csv, 2024-05)."""
    from datetime import datetime

    _, wh = example_wh
    latest: dict[str, tuple] = {}
    for path in sorted((example_dir / "inbox" / "orders").glob("*.csv")):
        with open(path, encoding="utf-8") as fh:
            for line, rec in enumerate(csv.DictReader(fh), start=2):
                rank = (datetime.fromisoformat(rec["updated_at"]), path.name, line)
                if rec["order_id"] not in latest or rank > latest[rec["order_id"]][0]:
                    latest[rec["order_id"]] = (rank, rec)
    first: dict[str, str] = {}
    for _, rec in latest.values():
        if rec["status"] == "completed" and rec["order_date"] <= "2024-05-31":
            first[rec["customer_id"]] = min(first.get(rec["customer_id"], "9999"), rec["order_date"])
    with open(example_dir / "expected_customer_tier_monthly.csv", encoding="utf-8") as fh:
        tiers = {r["customer_id"]: r["tier"] for r in csv.DictReader(fh) if r["eval_month"] == "2024-05"}
    dim = {r["customer_id"]: r for r in rows(wh, "select * from marts.dim_customer")}
    assert {c: str(r["first_order_date"]) for c, r in dim.items()} == first
    assert {c: (r["current_tier"], r["current_tier_month"]) for c, r in dim.items()} == \
        {c: (t, "2024-05") for c, t in tiers.items()}
    with open(example_dir / "inbox" / "customers" / "part-0001.csv", encoding="utf-8") as fh:
        names = {r["customer_id"]: r["customer_name"] for r in csv.DictReader(fh)}
    assert {c: r["customer_name"] for c, r in dim.items()} == names


def test_an_airflow_publish_retried_after_its_commit_writes_its_files_and_publishes_nothing_again(
        example_dir, tmp_path, monkeypatch):
    """operations.md: each DAG retries transient failures, re-running a task changes nothing the second
    time, and a run killed during publish is completed by the next. The task functions of the DAGs
    run here as Airflow runs them: the publish task is killed between its commit and the renames of
    its files (only *.tmp files are left), then retried with the same run id; checks and publish are
    re-run once more after that."""
    from datetime import datetime, timezone

    from keyaccounts import orchestration as ka
    from keyaccounts.pipeline import transform_task
    from keyaccounts.publish import pending as pending_module

    inbox, wh = tmp_path / "inbox", tmp_path / "wh.duckdb"
    shutil.copytree(example_dir / "inbox", inbox)
    run_id = "scheduled__2024-07-01T00:00:00+00:00"
    settings = ka.resolve_settings({"inbox": str(inbox), "warehouse": str(wh), "month": "2024-06"},
                                   datetime(2024, 7, 1, tzinfo=timezone.utc), run_id)
    ka.ingest(settings, run_id)
    ka.claim(settings)
    transform_task(ka.config_from_settings(settings), owner=run_id)
    ka.checks(settings)

    real_commit = pending_module.PendingFiles.commit

    def killed(self):
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(pending_module.PendingFiles, "commit", killed)
    with pytest.raises(SystemExit):
        ka.publish(settings, run_id)
    exports = tmp_path / "exports"
    assert not (exports / "tiers_2024-06.csv").exists() and list(exports.glob("*.tmp"))
    assert [r["version"] for r in rows(wh, "select version from audit.publish_log")] == [1]

    monkeypatch.setattr(pending_module.PendingFiles, "commit", real_commit)
    paths = ka.publish(settings, run_id)  # Airflow's retry
    assert exports / "tiers_2024-06.csv" in [Path(p) for p in paths]
    assert (exports / "tiers_2024-06.csv").exists() and (exports / "report_2024-06.html").exists()
    assert (tmp_path / "published" / "marts.duckdb").exists()
    tiers = list(csv.DictReader(io.StringIO((exports / "tiers_2024-06.csv").read_text(encoding="utf-8-sig"))))
    assert {r["customer_id"]: r["tier"] for r in tiers} == {"K1": "A", "K2": "A", "K3": "A", "K4": "B", "K5": "C",
                                                            "K6": "C"}  # expected_customer_tier_monthly, 2024-06
    # re-running either task again changes nothing: one publish in the log, one version in the record
    ka.checks(settings)
    ka.publish(settings, run_id)
    assert [r["version"] for r in rows(wh, "select version from audit.publish_log")] == [1]
    assert rows(wh, "select distinct version from marts.published_tiers") == [{"version": 1}]
    assert not list(exports.glob("*.tmp"))


def test_a_months_report_is_the_same_file_every_time(example_wh, tmp_path):
    """Re-running changes nothing the second time (operations.md), the report included: plotly
    would give its charts random ids on every write."""
    from keyaccounts.cli import main

    _, wh = example_wh
    for out in ("a", "b"):
        assert main(["export", "--warehouse", str(wh), "--month", "2024-05", "--out", str(tmp_path / out)]) == 0
    a, b = ((tmp_path / out / "report_2024-05.html").read_bytes() for out in ("a", "b"))
    assert a == b and b"chart-1" in a
    assert b"no collection rate this month" not in a  # the example's customers have collection rates


def test_a_second_warehouse_in_the_folder_of_another_stops_before_building(example_dir, tmp_path):
    """Two warehouses in one folder would share exports/ and published/: each would overwrite the
    other's files, and a run with nothing new would take the other's files for its own publish. The
    second one stops (exit 3) before it builds, and the first one's files stay as they were; a copy of
    a warehouse (a restored backup) may use its folder."""
    from keyaccounts.errors import InputError

    first = tmp_path / "a.duckdb"
    run(example_dir / "inbox", first, "2024-06")
    files = {p: p.read_bytes() for p in (tmp_path / "exports").rglob("*") if p.is_file()}
    assert (tmp_path / "exports" / "tiers_2024-06.csv") in files
    with pytest.raises(InputError, match="holds the files of another warehouse"):
        run(example_dir / "inbox", tmp_path / "b.duckdb", "2024-06")
    assert not rows(tmp_path / "b.duckdb", "select table_name from information_schema.tables "
                                          "where table_schema in ('marts', 'marts_build')")
    assert {p: p.read_bytes() for p in (tmp_path / "exports").rglob("*") if p.is_file()} == files
    # the first warehouse's own next run is up to date, and a copy of it may publish there too
    assert run(example_dir / "inbox", first, "2024-06").up_to_date_with is not None
    shutil.copy(first, tmp_path / "a-restored.duckdb")
    assert run(example_dir / "inbox", tmp_path / "a-restored.duckdb", "2024-06").exports
