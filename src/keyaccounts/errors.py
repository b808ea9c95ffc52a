"""User-facing errors: each carries a one-line message and the CLI exit code."""

from __future__ import annotations

# DuckDB's error when another process holds the file (here: importable without DuckDB, as the DAGs parse)
DUCKDB_FILE_LOCK = "Could not set lock on file"


class KeyAccountsError(Exception):
    """A failure the user can act on; printed as one line, never as a traceback."""

    exit_code = 1

    def __init__(self, message: str, details: str | None = None):
        super().__init__(message)
        self.details = details  # where to look for more (a log file, a table)


class UsageError(KeyAccountsError):
    exit_code = 2


class InputError(KeyAccountsError):
    """The inbox or an argument cannot be used (missing folder, bad month)."""

    exit_code = 3


class WarehouseLocked(KeyAccountsError):
    exit_code = 4


class WarehouseUnavailable(InputError):
    """The PostgreSQL warehouse cannot be reached (a resource fault, like a full disk)."""


class RejectThresholdExceeded(KeyAccountsError):
    exit_code = 5


class BuildFailed(KeyAccountsError):
    """dbt could not build or test the models; nothing new was published."""

    exit_code = 6


class BuildReplaced(KeyAccountsError):
    """Another run rebuilt `marts_build` after this run claimed it (Airflow runs of `transform` and
    `monthly_tiers` interleaving their tasks): this run publishes nothing."""

    exit_code = 4
