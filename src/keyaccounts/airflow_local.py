"""A local Airflow for the project: metadata on SQLite inside the state folder, the
project's DAGs, the DuckDB writer pool. Used by `keyaccounts demo`, `make airflow` and the
DAG tests; a real deployment configures its own Airflow (docker-compose.yml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyaccounts.config import PROJECT_ROOT, STATE_DIR
from keyaccounts.errors import KeyAccountsError
from keyaccounts.orchestration import BUSINESS_TZ, DUCKDB_POOL  # noqa: F401  (BUSINESS_TZ re-exported)

AIRFLOW_HOME = Path(os.environ.get("KEYACCOUNTS_AIRFLOW_HOME", STATE_DIR / "airflow" / "home"))


def airflow_env(home: Path = AIRFLOW_HOME, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # no network at run time: Cosmos telemetry off, Great Expectations analytics off
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # Cosmos keeps dbt's partial parse there: beside this Airflow's metadata, not in a /tmp folder
        # every Airflow on the machine shares
        "AIRFLOW__COSMOS__CACHE_DIR": os.environ.get("AIRFLOW__COSMOS__CACHE_DIR", str(home / "cosmos")),
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "true",
        "GX_ANALYTICS_ENABLED": "False",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra or {})
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path | None = None, timeout: int = 1800) -> None:
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    out = log.open("a", encoding="utf-8") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    finally:
        if log:
            out.close()
    if proc.returncode != 0:
        raise KeyAccountsError(f"`airflow {' '.join(args[:3])}` failed (exit {proc.returncode})",
                               details=str(log) if log else None)


def ensure_airflow(home: Path = AIRFLOW_HOME, log: Path | None = None) -> dict[str, str]:
    """Create the metadata DB (idempotent) and the pool; return the environment to use."""
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(home)
    _airflow(["db", "migrate"], env, log)
    _airflow(["pools", "set", DUCKDB_POOL, "1", "DuckDB allows one writer"], env, log)
    return env


def ensure_manifest(log: Path | None = None) -> Path:
    from keyaccounts.config import DBT_PROJECT_DIR
    from keyaccounts.transform.manifest import MANIFEST_PATH, generate_manifest

    sources = [p for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in (".sql", ".yml") and "target" not in p.parts]
    newest = max((p.stat().st_mtime for p in sources), default=0)
    if not MANIFEST_PATH.exists() or MANIFEST_PATH.stat().st_mtime < newest:
        generate_manifest()  # the DAGs render from it: it must match the models
    return MANIFEST_PATH


def dags_test(dag_id: str, logical_date: str, conf: dict, env: dict[str, str], log: Path | None = None) -> None:
    """Run one DAG run for real, in-process, like `airflow dags test`."""
    _airflow(["dags", "test", dag_id, logical_date, "-c", json.dumps(conf)], env, log)


def standalone() -> int:
    """`make airflow`: the project's DAGs in a local Airflow UI (api-server, scheduler, ...)."""
    ensure_manifest()
    env = ensure_airflow()
    bin_dir = str(Path(sys.executable).parent)  # standalone starts `airflow ...` subprocesses by name
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    print(f"Airflow home: {AIRFLOW_HOME}; DAGs: {PROJECT_ROOT / 'dags'}; the admin password is printed below "
          f"and kept in {AIRFLOW_HOME / 'simple_auth_manager_passwords.json.generated'}", file=sys.stderr)
    os.execve(str(Path(sys.executable).parent / "airflow"), ["airflow", "standalone"], env)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["standalone"]:
        sys.exit(standalone())
    print("usage: python -m keyaccounts.airflow_local standalone", file=sys.stderr)
    sys.exit(2)
