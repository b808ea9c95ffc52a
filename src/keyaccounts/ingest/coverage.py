"""Whether what was loaded can evaluate the month asked for, checked before the build.

Without customers signed by the month's end, or without any completed order on or before it,
no customer is evaluated (metrics.md "Population": the evaluation months start with the
earliest completed order). The build would then run for nothing and the row-count check stop
the run with exit 8; an empty inbox, an inbox pointed at a feed's own folder or a `--through`
before the data is a user's mistake, so it gets a one-line reason instead (exit 3). The raw
rows were checked at ingest, so their dates cast. A month whose orders exist but are all held
back (a missing rate) still goes through the build and its checks.
"""

from __future__ import annotations

from pathlib import Path

from keyaccounts.config import month_end
from keyaccounts.errors import InputError
from keyaccounts.ingest.contract import FEEDS


def _misplaced_files(inbox: Path) -> str:
    """A hint when files lie in the inbox folder itself, or in folders named for no feed (each feed reads
    the sub-folder of its own name)."""
    from keyaccounts.ingest.loader import unknown_folders

    loose = [p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")] if inbox.is_dir() else []
    unknown = unknown_folders(inbox) if inbox.is_dir() else []
    folders = ", ".join(f"{name}/" for name in FEEDS)
    if loose:
        return (f"; {len(loose)} file(s) lie in {inbox} itself and are not read: each feed's files go in "
                f"its own folder ({folders})")
    if unknown:
        return f"; folders not read (each feed reads the folder of its own name): {', '.join(unknown)}"
    return ""


def check_month_can_be_evaluated(conn, month: str, inbox: Path) -> None:
    end = month_end(month)
    customers = conn.execute("select count(*) from raw.customers where cast(trim(signed_on) as date) <= ?",
                             [end]).fetchone()[0]
    orders = conn.execute(
        "select count(*), min(cast(trim(order_date) as date)) from raw.orders where trim(status) = 'completed'"
    ).fetchone()
    if not customers:
        signed = conn.execute("select min(cast(trim(signed_on) as date)) from raw.customers").fetchone()[0]
        if signed is None:
            raise InputError("nothing to evaluate: no customer has been loaded"
                             + _misplaced_files(inbox))
        raise InputError(f"nothing to evaluate through {month}: the first customer was signed on {signed}")
    if not orders[0]:
        raise InputError("nothing to evaluate: no completed order has been loaded (the evaluation months start "
                         "with the earliest completed order)" + _misplaced_files(inbox))
    first = orders[1]
    if first > end:
        raise InputError(f"nothing to evaluate through {month}: the earliest completed order is dated {first}, "
                         f"so the first month that can be evaluated is {first:%Y-%m}")
