"""Which run owns the build in `marts_build`.

The pool of one slot serialises the tasks that write the warehouse, not DAG runs: a `transform` run
(triggered by a late file) can rebuild models between a `monthly_tiers` run's checks and its publish,
which would then publish marts nobody checked, or half of two builds. So a run claims the build before
its dbt models (`claim`), every dbt invocation of the run stops if the claim is no longer its own (macro
`check_build_owner`, on-run-start, given KEYACCOUNTS_BUILD_OWNER), the checks mark the claim checked, and
publish takes only a build its own run claimed and checked (`verify`, inside the publish transaction).
The CLI claims too, so an Airflow run and `keyaccounts run` on the same warehouse cannot mix either."""

from __future__ import annotations

from datetime import datetime, timezone

from keyaccounts.errors import BuildReplaced

TABLE = "audit.build_claim"


def _ensure(conn) -> None:
    conn.execute("create schema if not exists audit")
    conn.execute(f"create table if not exists {TABLE} (owner varchar, claimed_at timestamptz, checked_at timestamptz)")


def claim(conn, owner: str) -> None:
    """This run builds `marts_build` from now on (any other run's claim ends)."""
    _ensure(conn)
    conn.execute("begin transaction")
    conn.execute(f"delete from {TABLE}")
    conn.execute(f"insert into {TABLE} values (?, ?, null)", [owner, datetime.now(timezone.utc)])
    conn.execute("commit")


def verify(conn, owner: str, checked: bool = False) -> None:
    _ensure(conn)
    row = conn.execute(f"select owner, checked_at from {TABLE}").fetchone()
    if row is None or row[0] != owner:
        raise BuildReplaced(f"the marts were rebuilt by another run ({row[0] if row else 'none'}) after run {owner} "
                            f"built them: this run publishes nothing; run it again")
    if checked and row[1] is None:
        raise BuildReplaced(f"the build of run {owner} was not checked: nothing is published")


def mark_checked(conn, owner: str) -> None:
    verify(conn, owner)
    conn.execute(f"update {TABLE} set checked_at = ? where owner = ?", [datetime.now(timezone.utc), owner])
