"""Style: the dbt models are sqlfluff-clean (jaffle-shop conventions, .sqlfluff at the root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dbt_models_pass_sqlfluff(tmp_path):
    env = {**os.environ, "KEYACCOUNTS_WAREHOUSE": str(tmp_path / "lint.duckdb"),
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "sqlfluff"), "lint", "dbt_project/models"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
