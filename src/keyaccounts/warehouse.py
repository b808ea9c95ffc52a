"""Opening the embedded DuckDB warehouse, with a clear error when another run holds it."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from keyaccounts.errors import InputError, WarehouseLocked


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    release_dbt_handle()
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the warehouse folder {path.parent}: {exc.strerror}") from None
    elif not path.exists():
        raise InputError(f"warehouse {path} does not exist; run `keyaccounts run` first")
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise WarehouseLocked(
                f"warehouse {path} is in use by another process (one writer at a time); retry when it finishes"
            ) from None
        raise InputError(f"cannot open warehouse {path}: {text.splitlines()[0]}") from None


def release_dbt_handle() -> None:
    """dbt-duckdb keeps its DuckDB instance open in the process after a run (a class-level
    cache). It holds the file lock and its settings, so a later open of the same file from
    this process (the next task under `airflow dags test`, a read-only check) fails; the next
    dbt run simply re-creates it. Only acts when dbt-duckdb was imported."""
    module = sys.modules.get("dbt.adapters.duckdb.connections")
    if module is None:
        return
    manager = module.DuckDBConnectionManager
    with manager._LOCK:
        env, manager._ENV = manager._ENV, None
        if env is not None:
            try:
                env.close()
            except Exception:  # best effort: the environment is dropped either way
                pass


@contextmanager
def connection(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = connect(path, read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


def quote_ident(name: str) -> str:
    """Quote an identifier that comes from configuration or a file header."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def run_lock(path: Path | str) -> Iterator[None]:
    """One pipeline run per warehouse at a time (an flock on `<warehouse>.run.lock`, released by
    the kernel when the process dies, so a killed run never leaves a stale lock)."""
    import fcntl

    lock_path = Path(str(path) + ".run.lock")
    try:
        handle = open(lock_path, "a+")
    except OSError as exc:
        raise InputError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseLocked(
                f"warehouse {path} is in use by another keyaccounts run; retry when it finishes"
            ) from None
        yield
    finally:
        handle.close()
