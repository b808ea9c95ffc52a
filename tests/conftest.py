"""Shared helpers: write a small inbox from CSV text, run the real pipeline, query marts."""

from __future__ import annotations

import os
import textwrap
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from keyaccounts.config import RunConfig
from keyaccounts.pipeline import run_pipeline

from keyaccounts.config import shared_dir

EXAMPLE_DIR = shared_dir() / "spec" / "example"

# The modules of several minutes each, first: `make test` hands whole files to two workers in collection
# order (--no-loadscope-reorder). xdist's own order, files with the most tests first, started
# test_reliability (few tests, 6 to 8 minutes) late, and it ran alone at the end while the other worker
# sat idle.
LONGEST_FIRST = ("test_reliability.py", "test_dags.py", "test_publish.py", "test_postgres.py", "test_benchmark.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def write_inbox(root: Path, files: dict[str, str]) -> Path:
    """files: {'orders/part-0001.csv': 'csv text'}; the text is dedented and stripped."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
    return root


def run(inbox: Path, warehouse: Path, through: str, **kwargs):
    return run_pipeline(RunConfig(inbox=inbox, warehouse=warehouse, through=through, **kwargs))


def rows(warehouse: Path, sql: str, params=None) -> list[dict]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        cur = conn.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def one(warehouse: Path, sql: str, params=None) -> dict:
    result = rows(warehouse, sql, params)
    assert len(result) == 1, f"expected one row, got {len(result)}: {result}"
    return result[0]


def dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@pytest.fixture
def conn(tmp_path):
    """A DuckDB warehouse file of the test's own (ingest tests)."""
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield c
    c.close()


@pytest.fixture
def inbox(tmp_path) -> Path:
    """An empty inbox folder of the test's own."""
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def example_dir() -> Path:
    assert EXAMPLE_DIR.exists(), f"worked example not found at {EXAMPLE_DIR}"
    return EXAMPLE_DIR


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:  # the machine's service is part of the contract
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not running: {exc}")
    conn.autocommit = True
    return conn


@contextmanager
def pg_database(prefix: str):
    """A new database on the local server (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'create database "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
