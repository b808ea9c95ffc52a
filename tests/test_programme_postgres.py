"""The key-account programme on PostgreSQL: the hand-built inbox of test_programme (with
interactions, a promotion, a demotion, a held-back pair) gives the same programme and interaction
marts, tier table, held-back rows and account-manager files as on DuckDB (test_postgres covers the
worked example, which has no interactions)."""

from __future__ import annotations

import pytest

from conftest import pg_database, rows, run, write_inbox
from test_postgres import normalised, pg_rows
from test_programme import INBOX, THROUGH

TABLES = ("marts.customer_interactions_monthly", "marts.customer_programme_monthly", "marts.customer_tier_monthly",
          "marts.published_tiers", "quarantine.held_back", "quarantine.interactions")
DROP = {"_loaded_at", "_run_id"}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("programme_pg")
    inbox = write_inbox(root / "inbox", INBOX)
    duck = root / "duck" / "wh.duckdb"
    run(inbox, duck, THROUGH, reject_threshold=1.0)
    with pg_database("ka_prog") as url:
        run(inbox, url, THROUGH, reject_threshold=1.0, exports_dir=root / "pg_exports")
        yield duck, url, root / "duck" / "exports", root / "pg_exports"


def test_programme_marts_match_duckdb(both):
    duck, url, _, _ = both
    for table in TABLES:
        on_pg = [{k: v for k, v in r.items() if k not in DROP} for r in pg_rows(url, f"select * from {table}")]
        on_duck = [{k: v for k, v in r.items() if k not in DROP} for r in rows(duck, f"select * from {table}")]
        assert len(on_pg) == len(on_duck) > 0, table
        assert normalised(on_pg) == normalised(on_duck), table


def test_manager_files_match_duckdb(both):
    _, _, duck_exports, pg_exports = both
    on_duck = {p.name: p.read_bytes() for p in (duck_exports / "managers" / THROUGH).iterdir()}
    on_pg = {p.name: p.read_bytes() for p in (pg_exports / "managers" / THROUGH).iterdir()}
    assert len(on_duck) == 5 and on_pg == on_duck
