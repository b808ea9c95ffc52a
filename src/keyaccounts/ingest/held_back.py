"""Rows held back by staging, listed in their feed's quarantine table as well.

sources.md: an order or invoice without a rate for its month is "held back (quarantined with
reason `missing_fx_rate`) and retried on later runs", and a payment in another currency than
its known invoice "is quarantined (`currency_mismatch`)". Both can only be decided once the
rows are staged (the rate, the invoice may arrive later), so dbt lists them in
`quarantine.held_back`. After every build this module mirrors that list into
`quarantine.<feed>` (the table operations.md points readers to), with the raw values like any
other quarantined row, `_reason` the hold's reason and `_run_id` = `held_back`. The mirror is
replaced whole each time, so a row leaves it as soon as it counts (its rate arrived).
"""

from __future__ import annotations

from keyaccounts.ingest.contract import FEEDS
from keyaccounts.warehouse import has_table, quote_ident

HELD_BACK_RUN_ID = "held_back"


def record_held_back(conn) -> dict[str, dict[str, int]]:
    """Replace the held-back rows of each feed's quarantine table; returns how many there are, per
    feed and reason (the run's report). Does nothing before the first build (no
    `quarantine.held_back` yet)."""
    if not has_table(conn, "quarantine", "held_back"):
        return {}
    # the feeds come from the model, so a new kind of hold in held_back.sql is listed too
    feeds = [f for (f,) in conn.execute("select distinct feed from quarantine.held_back").fetchall() if f in FEEDS]
    counts: dict[str, dict[str, int]] = {}
    conn.execute("begin transaction")  # readers see the old list or the new one, never neither
    try:
        for name in FEEDS:
            conn.execute(f"delete from quarantine.{name} where _run_id = ?", [HELD_BACK_RUN_ID])
        for name in feeds:
            counts[name] = _copy_feed(conn, name)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return {name: by_reason for name, by_reason in counts.items() if by_reason}


def _copy_feed(conn, name: str) -> dict[str, int]:
    cols = ", ".join(f"r.{quote_ident(c)}" for c in FEEDS[name].column_names)
    # (source_file_seq, source_line) is the raw row's (_file_seq, _line): unique in raw
    conn.execute(
        f"insert into quarantine.{name} "
        f"select {cols}, r._file, r._line, r._file_seq, ?, r._loaded_at, h.reason "
        f"from raw.{name} as r inner join quarantine.held_back as h "
        "on h.feed = ? and h.source_file_seq = r._file_seq and h.source_line = r._line",
        [HELD_BACK_RUN_ID, name])
    return dict(conn.execute(f"select _reason, count(*) from quarantine.{name} where _run_id = ? "
                             "group by _reason order by _reason", [HELD_BACK_RUN_ID]).fetchall())
