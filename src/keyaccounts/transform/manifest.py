"""Write the dbt manifest Cosmos renders the DAGs from (`LoadMode.DBT_MANIFEST`), so that
parsing a DAG never runs dbt. `make setup` calls this when the dbt project changed."""

from __future__ import annotations

import sys
from pathlib import Path

from keyaccounts.config import DBT_PROJECT_DIR, STATE_DIR

MANIFEST_DIR = STATE_DIR / "dbt" / "manifest"
MANIFEST_PATH = MANIFEST_DIR / "manifest.json"


def generate_manifest(out_dir: Path = MANIFEST_DIR) -> Path:
    from keyaccounts.transform.dbt import run_dbt

    # parse needs a profile but opens no warehouse; a scratch path keeps real ones untouched
    run_dbt("parse", out_dir / "parse.duckdb", out_dir.parent / "parse-state", {}, target_path=out_dir)
    return out_dir / "manifest.json"


def main() -> int:
    path = generate_manifest()
    print(f"dbt manifest: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
