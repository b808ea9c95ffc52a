"""Opening the warehouse: the embedded DuckDB file (default) or a PostgreSQL database given
as a `postgresql://USER@HOST:PORT/DB` URL (the serving target, operations.md).

Both are used through the same small surface (`execute(sql, params)` with `?` placeholders,
`fetchone`, `fetchall`, `df`, `fetch_arrow_table`), so the task code runs unchanged on both;
the SQL it sends is written to be valid in both dialects.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from keyaccounts.config import PG_TLS_OPTIONS
from keyaccounts.errors import DUCKDB_FILE_LOCK, InputError, WarehouseLocked, WarehouseUnavailable


PG_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_MEMORY_LIMIT = "5GB"  # also profiles.yml's default


def is_postgres(warehouse: Path | str) -> bool:
    return str(warehouse).startswith(PG_SCHEMES)


def check_warehouse_text(text: str) -> str:
    """--warehouse as typed: a DuckDB file path or a postgresql:// URL. A mistyped URL (`postgresql//…`,
    `PostgreSQL://…`, `postgresql+psycopg2://…`, `mysql://…`) is refused: taken as a path it would create a
    DuckDB file of that name and publish there (exit 0), and DuckDB downloads an extension for `mysql:`."""
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]+:", text)  # `mysql:`, `md:` (DuckDB would go to the network)
    if not is_postgres(text) and (scheme or "://" in text or (text.lower().startswith("postgres") and "@" in text
                                                                and ":" in text)):
        raise ValueError(f"{mask_password(text)} is neither a DuckDB file path nor a postgresql://USER@HOST:PORT/DB URL "
                         "(the scheme is postgresql:// or postgres://, in lower case)")
    return text


def duckdb_settings(path: Path | str) -> dict[str, str]:
    """The DuckDB settings of every connection to the warehouse file, ours and dbt's (profiles.yml
    reads the same variables, passed on by `transform.dbt.warehouse_env`):
    KEYACCOUNTS_DUCKDB_THREADS (default 2), KEYACCOUNTS_DUCKDB_MEMORY_LIMIT (5GB: DuckDB holds 1 to
    3 GB beyond its buffer pool, so at 20 million orders this keeps the process within 8 GiB; it
    needs dbt to build one model at a time there, `transform.dbt.models_at_once`; the BI copy's
    second instance takes a quarter of the limit; docs/benchmarks.md) and
    KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY, where DuckDB spills what passes the memory limit
    (default `<warehouse>.tmp` beside the file, DuckDB's own default)."""
    return {
        "threads": os.environ.get("KEYACCOUNTS_DUCKDB_THREADS", "2"),
        "memory_limit": os.environ.get("KEYACCOUNTS_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
        "temp_directory": os.environ.get("KEYACCOUNTS_DUCKDB_TEMP_DIRECTORY", str(Path(path).resolve()) + ".tmp"),
    }


def connect(path: Path | str, read_only: bool = False):
    if is_postgres(path):
        return PgConnection(str(path), read_only=read_only)
    path = Path(path)
    release_dbt_handle()
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the warehouse folder {path.parent}: {exc.strerror}") from None
    elif not path.exists():
        raise InputError(f"warehouse {path} does not exist; run `keyaccounts run` first")
    settings = duckdb_settings(path)
    try:
        conn = duckdb.connect(str(path), read_only=read_only, config=settings)
        if not read_only:
            _keep_private(path, Path(settings["temp_directory"]))
        return conn
    except duckdb.IOException as exc:
        text = str(exc)
        if DUCKDB_FILE_LOCK in text:
            raise WarehouseLocked(
                f"warehouse {path} is in use by another process (one writer at a time); retry when it finishes"
            ) from None
        raise InputError(f"cannot open warehouse {path}: {text.splitlines()[0]}") from None
    except duckdb.Error as exc:  # a bad KEYACCOUNTS_DUCKDB_* value
        raise InputError(f"cannot open warehouse {path} with DuckDB settings {settings}: "
                         f"{str(exc).splitlines()[0]}") from None


def _keep_private(path: Path, spill: Path) -> None:
    """The warehouse holds raw survey answers with the respondents' personal data and the salt of
    their hash: only the pipeline's own user may read it (sources.md), whatever the umask. So the
    file is made 0600 (its write-ahead log too, while it exists) and the spill folder 0700. BI
    reads published/. A file owned by another user (a shared mount) is left as it is."""
    for target, mode in ((path, 0o600), (Path(f"{path}.wal"), 0o600), (spill, 0o700)):
        try:
            if target.exists() and target.stat().st_uid == os.getuid() and target.stat().st_mode & 0o777 != mode:
                target.chmod(mode)
        except OSError:
            pass  # a file system without modes (a Windows share): nothing to narrow


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
def connection(path: Path | str, read_only: bool = False) -> Iterator:
    conn = connect(path, read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


def has_table(conn, schema: str, name: str) -> bool:
    """Whether the table exists (DuckDB or PostgreSQL): a warehouse before its first run or build has none."""
    return conn.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                        [schema, name]).fetchone()[0] > 0


def quote_ident(name: str) -> str:
    """Quote an identifier that comes from configuration or a file header."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def run_lock(path: Path | str) -> Iterator[None]:
    """One pipeline run per warehouse at a time (an flock on `<warehouse>.run.lock`, released by
    the kernel when the process dies, so a killed run never leaves a stale lock; on PostgreSQL
    a session advisory lock, released when the session ends)."""
    if is_postgres(path):
        with connection(path) as conn:
            try:
                taken = conn.execute("select pg_try_advisory_lock(?)", [PG_RUN_LOCK_KEY]).fetchone()[0]
            except Exception as exc:
                if getattr(exc, "pgcode", None) != "42501":  # insufficient_privilege
                    raise
                raise InputError(f"the role of {redact(path)} may not take the run lock (pg_try_advisory_lock): "
                                 "grant-bi took advisory locks from PUBLIC; run grant-bi again as this role, or "
                                 "grant it execute on pg_catalog.pg_try_advisory_lock(bigint)") from None
            if not taken:
                raise WarehouseLocked(f"warehouse {redact(path)} is in use by another keyaccounts run; "
                                      "retry when it finishes")
            yield
        return
    lock_path = run_lock_path(path)
    try:
        handle = open(lock_path, "a+")
    except OSError as exc:
        raise InputError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    with _flock(handle, exclusive=True,
                busy=f"warehouse {path} is in use by another keyaccounts run or command; retry when it finishes"):
        yield


@contextmanager
def reader_lock(path: Path | str) -> Iterator[None]:
    """For the commands that only read the warehouse (`status`, `export`): a shared flock on the
    run's lock file. A run holds it exclusively from start to end and reconnects to the DuckDB
    file between its steps; a reader opening the file in such a gap would make the run's next
    step fail on DuckDB's file lock. So a reader exits at once (4) while a run is on, and a run
    started while a reader is on exits 4 the same way. PostgreSQL readers need no lock (MVCC)."""
    lock_path = run_lock_path(path)
    if is_postgres(path) or not lock_path.exists():  # no run ever started here
        yield
        return
    try:
        handle = open(lock_path, "r")  # flock needs no write access: a read-only copy works too
    except OSError:
        yield
        return
    with _flock(handle, exclusive=False,
                busy=f"warehouse {path} is being written by a keyaccounts run; retry when it finishes"):
        yield


def run_lock_path(path: Path | str) -> Path:
    return Path(str(path) + ".run.lock")


@contextmanager
def _flock(handle, exclusive: bool, busy: str) -> Iterator[None]:
    """Hold an flock on the open `handle` until the block ends (then close it); WarehouseLocked(busy)
    at once if another process holds a conflicting one. The kernel releases it when the process
    dies, so a killed run never leaves a stale lock."""
    import fcntl

    try:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseLocked(busy) from None
        yield
    finally:
        handle.close()


# ---------------------------------------------------------------- PostgreSQL
PG_RUN_LOCK_KEY = 0x6B65796163  # "keyac": the advisory lock one keyaccounts run holds


def redact(url: Path | str) -> str:
    """A URL fit for messages and logs: any password replaced by ***. Everything between `USER:` and
    the last `@` is masked, so a password holding an unencoded `/`, `?` or `#` (which URL parsers
    take for the end of the host part) is masked whole too."""
    text = str(url)
    if not is_postgres(text):
        return text
    return mask_password(text)


def mask_password(text: str) -> str:
    """`text` with a URL's password replaced by ***, for any scheme and however mistyped (`postgresql//`,
    an argument `--sql-source=mysql://…`): from the first `:` after the user's start (after `//` when
    there is one) up to the last `@`. No `:` before the last `@`: no password, unchanged."""
    at = text.rfind("@")
    if at <= 0:
        return text
    start = text.find("//") + 2 if "//" in text[:at] else 0
    colon = text.find(":", start, at)
    return text if colon < 0 else text[:colon + 1] + "***" + text[at:]


def pg_params(url: str) -> dict[str, str]:
    """Connection settings of a `postgresql://USER[:PASSWORD]@HOST:PORT/DB` URL. The password
    should come from KEYACCOUNTS_PG_PASSWORD (never the command line); a URL's own wins."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        hint = (" (a password holding / ? # or @ must be percent-encoded, or come from KEYACCOUNTS_PG_PASSWORD)"
                if "@" in parts.path + parts.query + parts.fragment else "")
        raise InputError(f"warehouse URL {redact(url)} must name one database: postgresql://USER@HOST:PORT/DB{hint}")
    try:
        port = parts.port or 5432
    except ValueError:
        raise InputError(f"warehouse URL {redact(url)} has a bad port") from None
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": str(port),
        "user": unquote(parts.username or os.environ.get("KEYACCOUNTS_PG_USER", "postgres")),
        "password": unquote(parts.password) if parts.password is not None
        else os.environ.get("KEYACCOUNTS_PG_PASSWORD", ""),
        "dbname": database,
        **_tls_options(url, parts.query),
    }


# the URL options a run passes on (config.PG_TLS_OPTIONS); any other is refused, not ignored
TLS_OPTIONS = PG_TLS_OPTIONS
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _tls_options(url: str, query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise InputError(f"warehouse URL {redact(url)} has a malformed ?option=value part") from None
    unknown = sorted(set(options) - set(TLS_OPTIONS))
    if unknown:
        raise InputError(f"warehouse URL option {unknown[0]!r} is not used; the options are {', '.join(TLS_OPTIONS)}")
    if "sslmode" in options and options["sslmode"] not in SSL_MODES:
        raise InputError(f"warehouse URL option sslmode must be one of {', '.join(SSL_MODES)}, "
                         f"got {options['sslmode']!r}")
    return options


def _pg_sql(sql: str, params) -> str:
    # the task code writes DuckDB-style `?` placeholders; psycopg2 wants %s (and %% for %)
    return sql.replace("%", "%%").replace("?", "%s") if params is not None else sql


class PgResult:
    """The part of DuckDB's result API the task code uses, over a psycopg2 cursor."""

    def __init__(self, cursor):
        self._cursor = cursor

    @property
    def description(self):
        return self._cursor.description

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self):
        return self._cursor.fetchall()

    def _columns(self) -> list[str]:
        return [d.name for d in self._cursor.description]

    def _arrow_types(self) -> list:
        import pyarrow as pa

        simple = {16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 700: pa.float32(),
                  701: pa.float64(), 1082: pa.date32(), 1114: pa.timestamp("us"),
                  1184: pa.timestamp("us", tz="UTC")}
        out = []
        for d in self._cursor.description:
            if d.type_code == NUMERIC_OID:
                # numeric(p, s) keeps its scale, like DuckDB's decimal; unconstrained numeric is exact text
                out.append(pa.decimal128(d.precision, d.scale) if d.precision and d.precision <= 38 else pa.string())
            else:
                out.append(simple.get(d.type_code, pa.string()))
        return out

    def df(self):
        """Like DuckDB's `.df()`: decimals become floats (checks compare with tolerances)."""
        import pandas as pd

        frame = pd.DataFrame(self._cursor.fetchall(), columns=self._columns())
        for d in self._cursor.description:
            if d.type_code == NUMERIC_OID:
                frame[d.name] = pd.to_numeric(frame[d.name].map(lambda v: None if v is None else float(v)))
        return frame

    def fetch_arrow_table(self):
        import pyarrow as pa

        types, columns = self._arrow_types(), self._columns()
        rows = self._cursor.fetchall()
        arrays = []
        for i, kind in enumerate(types):
            values = [r[i] for r in rows]
            if pa.types.is_string(kind):
                values = [None if v is None else str(v) for v in values]
            arrays.append(pa.array(values, kind))
        return pa.table(dict(zip(columns, arrays)))


NUMERIC_OID = 1700


class PgConnection:
    """A PostgreSQL warehouse connection in autocommit mode: like the DuckDB code, transactions
    are explicit (`begin transaction` ... `commit`)."""

    dialect = "postgres"

    def __init__(self, url: str, read_only: bool = False):
        import psycopg2

        self.url = url
        self.params = pg_params(url)
        try:
            self._conn = psycopg2.connect(connect_timeout=10, application_name="keyaccounts", **self.params)
        except psycopg2.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unreachable"])[0]
            raise WarehouseUnavailable(f"cannot connect to the warehouse {redact(url)}: {first}") from None
        self._conn.autocommit = True
        if read_only:
            self._conn.set_session(readonly=True, autocommit=True)

    def execute(self, sql: str, params=None) -> PgResult:
        cursor = self._conn.cursor()
        cursor.execute(_pg_sql(sql, params), params)
        return PgResult(cursor)

    def copy_rows(self, table: str, columns: list[str], rows) -> None:
        """Bulk-load rows (tuples of str/int/bool/None) into `table` with COPY (text format)."""
        import io

        def field(v) -> str:
            if v is None:
                return "\\N"
            if isinstance(v, bool):
                return "t" if v else "f"
            # NUL cannot be stored in PostgreSQL text (rows holding one are quarantined: U+FFFD marks it)
            return (str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                    .replace("\r", "\\r").replace("\x00", "\ufffd"))

        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(field(v) for v in row) + "\n")
        buffer.seek(0)
        cols = ", ".join(quote_ident(c) for c in columns)
        with self._conn.cursor() as cursor:
            cursor.copy_expert(f"copy {table} ({cols}) from stdin", buffer)

    def close(self) -> None:
        self._conn.close()
