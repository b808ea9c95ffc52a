"""operations.md Security, issue 9: no secret in the repository (a secret scanner), survey
respondents' personal data never leaves the raw layer (marts, exports, report, checks, BI
copy, logs, command output are scanned for the raw values), and the inbox cannot be
escaped through links. The PostgreSQL grants of the BI role: tests/test_postgres.py."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import one, rows

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "keyaccounts")
SCANNER = str(Path(sys.executable).parent / "detect-secrets")
# distinctive personal data the test plants in the survey feed
PII = {"respondent_name": "欧阳秘密", "respondent_phone": "13912345678", "respondent_email": "secret.person@example.cn"}
SALT = "salt-Zq81-marker"  # KEYACCOUNTS_PII_SALT of the run: a secret, so it must not be written anywhere either


def scan(paths: list[str], cwd: Path) -> dict:
    proc = subprocess.run([SCANNER, "scan", *paths], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]


def test_no_secret_in_the_repository():
    """Every file the repository holds or would take (tracked, or new and not ignored)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    files = [f for f in files if f and (ROOT / f).is_file()]
    assert len(files) > 50
    assert scan(files, ROOT) == {}


def test_the_secret_scanner_finds_a_planted_secret(tmp_path):
    """The scan above can fail: the same scanner flags a password and a private key."""
    planted = tmp_path / "settings.py"
    planted.write_text('DB_PASSWORD = "hunter2-Xk9#mQ2vLp"\n'  # pragma: allowlist secret
                       "KEY = '-----BEGIN RSA PRIVATE KEY-----'\n", encoding="utf-8")  # pragma: allowlist secret
    found = scan(["settings.py"], tmp_path)
    assert {r["type"] for r in found["settings.py"]} >= {"Secret Keyword", "Private Key"}


@pytest.fixture(scope="module")
def pii_run(example_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pii")
    inbox = out / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    survey = inbox / "survey_responses" / "part-0001.csv"
    with open(survey, encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    for r in records:
        r.update(PII)
    # and a bad row (NPS out of range): quarantined, with its personal data withheld there
    records.append({**records[0], "response_id": "R-BAD-PII", "nps_score": "11"})
    with open(survey, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    warehouse = out / "wh" / "warehouse.duckdb"
    env = {**os.environ, "KEYACCOUNTS_PII_SALT": SALT}
    proc = subprocess.run([CLI, "run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--through", "2024-06",
                           "--reject-threshold", "0.5"], capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=lambda: os.umask(0o022))  # the usual umask: new files readable by all
    assert proc.returncode == 0, proc.stderr
    status = subprocess.run([CLI, "status", "--warehouse", str(warehouse)], capture_output=True, text=True,
                            timeout=120, env=env)
    return warehouse, proc.stdout + proc.stderr + status.stdout + status.stderr


def _text_values(conn, schema: str | None = None) -> str:
    """Every value of every table (all columns as text) of a DuckDB database."""
    where = f"where table_schema = '{schema}'" if schema else ""
    tables = conn.execute(f"select table_schema, table_name from information_schema.tables {where}").fetchall()
    out = []
    for s, t in tables:
        out += [" ".join(map(str, r)) for r in conn.execute(f'select * from "{s}"."{t}"').fetchall()]
    return "\n".join(out)


def test_survey_personal_data_never_leaves_the_raw_layer(pii_run):
    warehouse, output = pii_run
    # the planted values are there to be found: raw keeps the delivery as it came
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert PII["respondent_email"] in _text_values(conn, "raw")
        published = {s: _text_values(conn, s) for s in ("staging", "marts", "marts_build", "quarantine")}
    bad = one(warehouse, "select respondent_name, respondent_email, _reason from quarantine.survey_responses")
    assert bad == {"respondent_name": "(withheld: personal data)", "respondent_email": "(withheld: personal data)",
                   "_reason": "out_of_range:nps_score"}
    hashed = rows(warehouse, "select respondent_hash from staging.stg_survey_responses")
    assert hashed and all(len(r["respondent_hash"]) == 64 for r in hashed)  # hashed in staging, not dropped
    # the hash is SHA-256 of salt|name|phone|email (trimmed, lower case), with the run's salt
    expected = hashlib.sha256("|".join([SALT, *(v.lower() for v in PII.values())]).encode()).hexdigest()
    assert {r["respondent_hash"] for r in hashed} == {expected}
    marts_columns = rows(warehouse, "select column_name from information_schema.columns "
                                    "where table_schema = 'marts' and column_name like 'respondent%'")
    assert marts_columns == []  # sources.md: not even the hash reaches a mart
    # everything else the run wrote beside the warehouse: exports, report, checks, BI copy, dbt logs
    texts = dict(published, output=output)
    for path in warehouse.parent.rglob("*"):
        if not path.is_file() or path == warehouse or path.name.startswith(warehouse.name):
            continue
        if path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as conn:
                texts[str(path)] = _text_values(conn)
        elif path.suffix == ".parquet":
            texts[str(path)] = _text_values_parquet(path)
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert any(p.endswith(".csv") for p in texts) and any(p.endswith(".html") for p in texts)
    assert any(p.endswith("marts.duckdb") for p in texts) and any("/logs/" in p for p in texts)
    assert any("/target/" in p for p in texts)  # dbt's compiled SQL and run results
    leaks = [(where, value) for where, text in texts.items() for value in [*PII.values(), SALT] if value in text]
    assert leaks == []


def test_the_warehouse_file_is_readable_by_the_pipelines_user_only(pii_run):
    """sources.md: raw personal data stays "readable only by the pipeline's own role". On DuckDB that
    role is the file's owner: the warehouse (raw survey answers, the hash's salt) is 0600 whatever
    the umask (the CLI ran under the usual 022), while the BI copy keeps the umask's modes."""
    warehouse, _ = pii_run
    assert stat.S_IMODE(warehouse.stat().st_mode) == 0o600
    assert stat.S_IMODE((warehouse.parent / "published" / "marts.duckdb").stat().st_mode) == 0o644


def _text_values_parquet(path: Path) -> str:
    with duckdb.connect() as conn:
        return "\n".join(" ".join(map(str, r)) for r in conn.execute(
            "select * from read_parquet(?)", [str(path)]).fetchall())


def test_links_out_of_the_inbox_are_never_read(example_dir, tmp_path):
    """Fault: an inbox file that is a symlink to a file elsewhere (e.g. another team's data),
    and a feed folder linked to a folder outside: both are quarantined as `outside_inbox`,
    never opened; a second run does not quarantine them again."""
    inbox = tmp_path / "inbox"
    shutil.copytree(example_dir / "inbox", inbox)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret_orders = elsewhere / "orders.csv"
    secret_orders.write_text((example_dir / "inbox" / "orders" / "part-0001.csv").read_text(encoding="utf-8")
                             .replace("O-K1-", "O-LEAK-"), encoding="utf-8")
    (inbox / "orders" / "part-0003.csv").symlink_to(secret_orders)
    (elsewhere / "tier_overrides").mkdir()
    (elsewhere / "tier_overrides" / "part-0001.csv").write_text(
        "customer_id,eval_month,forced_tier,approved_by,reason,updated_at\n"
        "K6,2024-06,A,someone,linked,2024-06-01T00:00:00Z\n", encoding="utf-8")
    (inbox / "tier_overrides").symlink_to(elsewhere / "tier_overrides", target_is_directory=True)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    for _ in range(2):
        proc = subprocess.run([CLI, "run", "--inbox", str(inbox), "--warehouse", str(warehouse),
                               "--through", "2024-06"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    files = rows(warehouse, "select feed, file_name, reason from quarantine.files order by feed")
    assert [(f["feed"], f["file_name"], f["reason"]) for f in files] == [
        ("orders", "orders/part-0003.csv", "outside_inbox"),
        ("tier_overrides", "tier_overrides/part-0001.csv", "outside_inbox")]
    assert rows(warehouse, "select count(*) as n from raw.orders where order_id like 'O-LEAK-%'")[0]["n"] == 0
    assert rows(warehouse, "select count(*) as n from raw.tier_overrides")[0]["n"] == 0
    # a link that stays inside the inbox is an ordinary file
    from keyaccounts.ingest.loader import _outside

    os.symlink(inbox / "orders" / "part-0002.csv", inbox / "orders" / "part-0004.csv")
    assert _outside(inbox / "orders" / "part-0004.csv", inbox) is None
    assert _outside(inbox / "orders" / "part-0003.csv", inbox) == str(secret_orders.resolve())


@pytest.mark.parametrize("url", [
    "postgresql://postgres:Pw0rd-x1@127.0.0.1:5432/postgres",  # pragma: allowlist secret
    "postgresql://postgres:pa/ss-x1@127.0.0.1:5432/db",  # pragma: allowlist secret (unencoded / ? #: parsers cut the host short)
    "postgresql://postgres:pa?ss-x1@127.0.0.1:5432/db",  # pragma: allowlist secret
    "postgresql://postgres:pa#ss-x1@127.0.0.1:5432/db",  # pragma: allowlist secret
    "postgresql://postgres:p@ss-x1@127.0.0.1:5432/db",  # pragma: allowlist secret
])
def test_a_password_in_a_warehouse_url_is_never_printed(url):
    from keyaccounts.warehouse import redact

    shown = redact(url)
    assert "ss-x1" not in shown and "Pw0rd" not in shown
    assert shown.startswith("postgresql://postgres:***@")


def test_status_of_a_postgres_warehouse_masks_the_password(tmp_path):
    """The messages that name the warehouse (status, export, grant-bi) show it redacted."""
    url = "postgresql://postgres:Pw0rd-x1@127.0.0.1:5432/postgres"  # pragma: allowlist secret
    for args in (["status", "--warehouse", url], ["export", "--warehouse", url, "--month", "2024-05", "--out",
                                                   str(tmp_path / "out")]):
        proc = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
        assert proc.returncode == 3, proc.stderr
        assert "Pw0rd" not in proc.stdout + proc.stderr and "postgres:***@" in proc.stderr


def test_tls_options_of_a_postgres_url_reach_the_connections_or_are_refused():
    """A user asking for TLS verification must get it or hear why not: the URL's TLS options go to the
    run's connections and to dbt's profile; other options and unknown modes are refused, not ignored."""
    from keyaccounts.errors import InputError
    from keyaccounts.transform.dbt import warehouse_env
    from keyaccounts.warehouse import pg_params

    url = "postgresql://ka@db.example:5433/wh?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem"
    params = pg_params(url)
    assert (params["sslmode"], params["sslrootcert"], params["dbname"], params["port"]) == (
        "verify-full", "/etc/ssl/ca.pem", "wh", "5433")
    env = warehouse_env(url)
    assert (env["KEYACCOUNTS_PG_SSLMODE"], env["KEYACCOUNTS_PG_SSLROOTCERT"], env["KEYACCOUNTS_PG_SSLCERT"]) == (
        "verify-full", "/etc/ssl/ca.pem", "")
    assert "sslmode" not in pg_params("postgresql://ka@db.example/wh")  # libpq's default
    for bad, hint in (("?sslmode=bogus", "sslmode must be one of"), ("?options=-c%20x%3Dy", "'options' is not used"),
                      ("?target_session_attrs=any", "is not used")):
        with pytest.raises(InputError, match=hint):
            pg_params("postgresql://ka@db.example/wh" + bad)


def test_a_run_that_asks_for_tls_from_a_server_without_it_fails_with_one_line(tmp_path, example_dir):
    """sslmode=require against the local server (no TLS) fails to connect: one line, exit 4, not a
    run in clear text."""
    proc = subprocess.run([CLI, "run", "--inbox", str(example_dir / "inbox"), "--warehouse",
                           "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=require", "--through", "2024-05",
                           "--exports", str(tmp_path / "exports")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("keyaccounts: error:")]
    assert len(errors) == 1 and "SSL" in errors[0], proc.stderr


def test_tls_options_reach_the_airflow_dbt_tasks_too(tmp_path):
    """The Cosmos dbt tasks get only the environment variables the DAGs list: the URL's TLS options
    must be among them, with their values in the run's settings."""
    from keyaccounts.config import RunConfig
    from keyaccounts.orchestration import DBT_ENV_NAMES, settings_from_config

    cfg = RunConfig(inbox=tmp_path, warehouse="postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                    through="2024-05", exports_dir=tmp_path / "exports")
    env = settings_from_config(cfg)["dbt_env"]
    assert env["KEYACCOUNTS_PG_SSLMODE"] == "disable" and "KEYACCOUNTS_PG_SSLMODE" in DBT_ENV_NAMES
    assert {"KEYACCOUNTS_PG_SSLROOTCERT", "KEYACCOUNTS_PG_SSLCERT", "KEYACCOUNTS_PG_SSLKEY"} <= set(DBT_ENV_NAMES)


def test_dbt_keeps_no_password_of_the_command_line_in_its_files(tmp_path, monkeypatch):
    """dbt writes its caller's command line (sys.argv) into dbt.log and run_results.json, files any local
    user can read: a password typed into a --warehouse or --sql-source URL must not reach them."""
    from keyaccounts.ingest.loader import ensure_schema
    from keyaccounts.transform.dbt import run_dbt

    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        ensure_schema(conn)  # empty raw tables: enough for one staging model
    secret = "Pw0rd-x9"  # pragma: allowlist secret
    argv = ["keyaccounts", "run", "--warehouse", f"postgresql://postgres:{secret}@127.0.0.1:5432/wh",  # pragma: allowlist secret
            f"--sql-source=mysql+pymysql://erp:{secret}@erp.example/erp"]  # pragma: allowlist secret
    monkeypatch.setattr(sys, "argv", argv)
    state = tmp_path / "dbt"
    run_dbt("build", tmp_path / "wh.duckdb", state, {"through_month": "2024-06"}, extra=["--select", "stg_fx_rates"])
    written = "".join(p.read_text(encoding="utf-8", errors="replace") for p in state.rglob("*") if p.is_file())
    assert "postgresql://postgres:***@127.0.0.1:5432/wh" in written  # the command line is there, masked
    assert secret not in written
    assert sys.argv == argv  # given back unchanged
