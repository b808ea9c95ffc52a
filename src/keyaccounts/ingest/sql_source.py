"""SQL source: orders, invoices and payments read from an operational PostgreSQL database
(a URL, or an Airflow connection resolved by the DAGs), incrementally by `updated_at`.

Each feed's pull becomes one "delivery" that goes through the same contract checks,
quarantine and manifest as a file. The watermark (the latest `updated_at` taken) lives in
the warehouse (`audit.watermarks`) and moves in the same transaction as the rows. Rows at
the watermark itself are read again on the next pull (`>=`), so a row committed later with
the same timestamp is not missed; re-reading a row changes nothing (duplicates rule).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from keyaccounts.errors import KeyAccountsError
from keyaccounts.ingest.contract import FEEDS
from keyaccounts.ingest.readers import FileContent, UnreadableFile

SQL_FEEDS = ("orders", "invoices", "payments")


class SourceUnavailable(KeyAccountsError):
    """The source database cannot be reached (transient: retried by Airflow)."""

    exit_code = 7


@dataclass
class SqlSource:
    url: str
    schema: str = "public"
    tables: dict[str, str] = field(default_factory=lambda: {f: f for f in SQL_FEEDS})
    connection: object = field(default=None, repr=False)  # open during an ingest run

    @property
    def name(self) -> str:
        """The source without credentials: the key of its watermarks."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + f"#{self.schema}"

    def connect(self):
        import psycopg2

        try:
            conn = psycopg2.connect(self.url, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["connection failed"])[0]
            raise SourceUnavailable(f"SQL source {self.name} is unreachable: {first}") from None
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute("set time zone 'UTC'")  # timestamps come out as UTC instants
        return conn


@dataclass
class Pull:
    content: FileContent
    watermark: str | None  # the latest updated_at read, ISO 8601 UTC
    sha: str
    size: int


def pull_feed(conn, source: SqlSource, feed_name: str, since: str | None) -> Pull | None:
    """Rows of one feed changed at or after `since`, as text in the contract's columns.
    None when nothing changed. Raises UnreadableFile when the table lacks a required column."""
    from psycopg2 import sql

    feed = FEEDS[feed_name]
    table = source.tables[feed_name]
    with conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            [source.schema, table],
        )
        available = {r[0] for r in cur.fetchall()}
        if not available:
            raise UnreadableFile("missing_table", f"table {source.schema}.{table} does not exist")
        missing = [c for c in feed.required_columns if c not in available]
        if missing:
            raise UnreadableFile("missing_columns", "missing required column(s): " + ", ".join(missing))
        columns = [c for c in feed.column_names if c in available]
        query = sql.SQL(
            "select {cols}, to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            "from {table} where %(since)s::timestamptz is null or updated_at >= %(since)s::timestamptz "
            "order by updated_at, {key}"
        ).format(
            cols=sql.SQL(", ").join(sql.SQL("cast({} as text)").format(sql.Identifier(c)) for c in columns),
            table=sql.Identifier(source.schema, table),
            key=sql.SQL(", ").join(sql.Identifier(k) for k in feed.key),
        )
        cur.execute(query, {"since": since})
        records = cur.fetchall()
    if not records:
        return None
    rows = [list(r[:-1]) for r in records]
    watermark = max(r[-1] for r in records)
    digest = hashlib.sha256(repr((feed_name, columns, rows)).encode("utf-8")).hexdigest()
    content = FileContent(columns, rows, list(range(1, len(rows) + 1)), "sql")
    return Pull(content, watermark, digest, sum(len(str(v or "")) for r in rows for v in r))
