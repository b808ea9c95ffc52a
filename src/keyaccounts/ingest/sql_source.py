"""SQL source: orders, invoices and payments read from an operational database through
SQLAlchemy (sources.md: "PostgreSQL (or any SQLAlchemy-reachable) database"; a URL, or an
Airflow connection resolved by the DAGs), incrementally by `updated_at`.

Each feed's pull becomes one "delivery" that goes through the same contract checks,
quarantine and manifest as a file. The watermark (the latest `updated_at` taken) lives in
the warehouse (`audit.watermarks`) and moves in the same transaction as the rows. Rows at
the watermark itself are read again on the next pull (`>=`), so a row committed later with
the same timestamp is not missed; re-reading a row changes nothing (duplicates rule).

Values are read as the database's driver returns them and written as the contract's text in
Python (dates and timestamps ISO 8601, decimals plain), so the query is the same on every
dialect: PostgreSQL (psycopg2, installed), SQLite (built in), or any database whose SQLAlchemy
driver the user installs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from keyaccounts.errors import InputError, KeyAccountsError
from keyaccounts.ingest.contract import FEEDS
from keyaccounts.ingest.readers import FileContent, UnreadableFile

SQL_FEEDS = ("orders", "invoices", "payments")


class SourceUnavailable(KeyAccountsError):
    """The source database cannot be reached (transient: retried by Airflow)."""

    exit_code = 7


@dataclass
class SqlSource:
    url: str
    schema: str | None = None  # None: public on PostgreSQL, else the database's default
    tables: dict[str, str] = field(default_factory=lambda: {f: f for f in SQL_FEEDS})
    connection: object = field(default=None, repr=False)  # open during an ingest run

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(("postgresql:", "postgres:", "postgresql+"))

    @property
    def effective_schema(self) -> str | None:
        """The schema of the source tables: as given, else `public` on PostgreSQL (the watermarks
        of earlier runs are keyed by it), else the database's default."""
        return self.schema or ("public" if self.is_postgres else None)

    @property
    def name(self) -> str:
        """The source without credentials: the key of its watermarks."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        # a file database (sqlite:///path) has no host: its URL is its name, as written
        base = urlunsplit((parts.scheme, netloc, parts.path, "", "")) if parts.netloc else self.url.split("?")[0]
        return base + (f"#{self.effective_schema}" if self.effective_schema else "")

    def table_name(self, feed_name: str) -> str:
        table = self.tables[feed_name]
        return f"{self.effective_schema}.{table}" if self.effective_schema else table

    def connect(self):
        import sqlalchemy
        from sqlalchemy import exc
        from sqlalchemy.pool import NullPool

        # a PostgreSQL URL without a driver goes through psycopg2, the driver installed (SQLAlchemy 2.1
        # would otherwise look for psycopg 3)
        url = (f"postgresql+psycopg2://{self.url.split('://', 1)[1]}"
               if self.url.startswith(("postgres://", "postgresql://")) else self.url)
        try:
            database = sqlalchemy.engine.make_url(url).database
            if url.startswith("sqlite:") and database and database != ":memory:" and not Path(database).is_file():
                # SQLite would create an empty database for a mistyped path
                raise InputError(f"SQL source {self.name}: no SQLite database at {database}")
            engine = sqlalchemy.create_engine(url, poolclass=NullPool,
                                              connect_args={"connect_timeout": 10} if self.is_postgres else {})
            conn = engine.connect()
        except (exc.NoSuchModuleError, ImportError) as missing:
            scheme = urlsplit(self.url).scheme
            raise InputError(f"SQL source {self.name}: no SQLAlchemy dialect or driver for '{scheme}' is installed "
                             f"({missing}); install it into the environment, or use postgresql:// or sqlite://"
                             ) from None
        except exc.ArgumentError as bad:
            raise InputError(f"SQL source: {bad}") from None
        except exc.DBAPIError as failed:
            first = (str(failed.orig or failed).strip().splitlines() or ["connection failed"])[0]
            raise SourceUnavailable(f"SQL source {self.name} is unreachable: {first}") from None
        if self.is_postgres:
            # read only, and timestamps come out as UTC instants
            conn.exec_driver_sql("set session characteristics as transaction read only")
            conn.exec_driver_sql("set time zone 'UTC'")
            conn.commit()  # a SET rolled back with its transaction would be undone
        return conn


@dataclass
class Pull:
    content: FileContent
    watermark: str | None  # the latest updated_at read, ISO 8601 UTC
    sha: str
    size: int


def pull_feed(conn, source: SqlSource, feed_name: str, since: str | None) -> Pull | None:
    """Rows of one feed changed at or after `since`, as text in the contract's columns.
    None when nothing changed. Raises UnreadableFile when the table or a required column is
    missing."""
    import sqlalchemy
    from sqlalchemy import exc

    feed = FEEDS[feed_name]
    table, schema = source.tables[feed_name], source.effective_schema
    try:
        available = {c["name"] for c in sqlalchemy.inspect(conn).get_columns(table, schema=schema)}
    except exc.NoSuchTableError:
        available = set()
    if not available:
        raise UnreadableFile("missing_table", f"table {source.table_name(feed_name)} does not exist")
    missing = [c for c in feed.required_columns if c not in available]
    if missing:
        raise UnreadableFile("missing_columns", "missing required column(s): " + ", ".join(missing))
    quote = conn.dialect.identifier_preparer.quote
    columns = [c for c in feed.column_names if c in available]
    relation = (f"{quote(schema)}." if schema else "") + quote(table)
    query = (f"select {', '.join(quote(c) for c in columns)} from {relation}"
             + (" where updated_at >= :since" if since is not None else "")
             + f" order by updated_at, {', '.join(quote(k) for k in feed.key)}")
    result = conn.execute(sqlalchemy.text(query), {"since": since} if since is not None else {}).fetchall()
    conn.rollback()  # end the read transaction: the next pull sees what was committed since
    if not result:
        return None
    records = [[_contract_text(v) for v in r] for r in result]
    digest = hashlib.sha256(repr((feed_name, columns, records)).encode("utf-8")).hexdigest()
    content = FileContent(columns, records, list(range(1, len(records) + 1)), "sql")
    stamp = columns.index("updated_at")
    return Pull(content, _watermark([r[stamp] for r in result if r[stamp] is not None]), digest,
                sum(len(v or "") for r in records for v in r))


def _contract_text(value) -> str | None:
    """A database value as the text the contract reads: ISO 8601 dates and timestamps (an instant
    with its offset, a naive one as it is: business time), plain decimals."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _watermark(stamps: list) -> str | None:
    """The next pull's lower bound: the latest updated_at read. A timestamp the driver returns as
    one is compared by the database as a timestamp: an instant is written in UTC (`...Z`), a naive
    one as it is. A text column is compared as text, so its latest value is its greatest text (its
    rows must be written in one format and offset, docs/ingest.md)."""
    if not stamps:
        return None
    if all(isinstance(v, datetime) for v in stamps):
        aware = [v for v in stamps if v.tzinfo is not None]
        if len(aware) == len(stamps):
            return max(v.astimezone(timezone.utc) for v in aware).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if not aware:
            return max(stamps).isoformat()
    return max(_contract_text(v) for v in stamps)
