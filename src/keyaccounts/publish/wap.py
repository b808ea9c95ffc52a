"""Write-audit-publish: dbt builds the marts into `marts_build`, the checks read them there,
and only then one transaction swaps them into `marts` and appends the month to the
append-only record `marts.published_tiers`. A failed build or check never reaches `marts`.

`marts.published_tiers` is never rewritten: publishing a month already published adds
nothing, unless a restatement is asked for; then a new version is appended and
`marts.published_tier_changes` says, per customer, what changed and who restated it why.

The SQL runs on DuckDB and PostgreSQL alike. On DuckDB nothing is copied: the built table
is renamed to `marts_build.<table>__published` and `marts.<table>` is a view of it, replaced
in the same transaction (DuckDB cannot move a table to another schema; copying every mart
took a tenth of a run, docs/benchmarks.md). On PostgreSQL a mart is refilled in place
(delete + insert in the publish transaction: readers keep reading the old rows until the
commit, and the BI role's grants and any view a user built on the table survive); it is
dropped and re-created only when its columns changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timezone

from keyaccounts.config import DBT_PROJECT_DIR
from keyaccounts.warehouse import quote_ident

BUILD_SCHEMA = "marts_build"
SCHEMA = "marts"
PUBLISHED_SUFFIX = "__published"  # DuckDB: marts.<t> is a view of marts_build.<t>__published
RECORD_META = ("version", "published_at", "run_id")


@dataclass
class PublishResult:
    month: str
    action: str  # published | unchanged | restated
    version: int
    changed_customers: int = 0
    differs_from_record: int = 0  # customers whose rebuilt row differs from the record (not restated)


def _tables(conn, schema: str, views: bool = False) -> list[str]:
    return [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = ? "
        "and table_type in ('BASE TABLE', ?) order by table_name", [schema, "VIEW" if views else "BASE TABLE"]).fetchall()]


def published_tables(conn) -> list[str]:
    """What a reader finds in `marts`: the published marts (views on DuckDB) and the record."""
    return _tables(conn, SCHEMA, views=True)


def _ensure_record(conn) -> None:
    conn.execute(f"create schema if not exists {SCHEMA}")
    if "published_tiers" not in _tables(conn, SCHEMA):
        conn.execute(
            f"create table {SCHEMA}.published_tiers as select *, 0 as version, "
            f"cast(null as timestamptz) as published_at, cast(null as varchar) as run_id "
            f"from {BUILD_SCHEMA}.customer_tier_monthly where false"
        )
    conn.execute(
        f"""create table if not exists {SCHEMA}.published_tier_changes (
            eval_month varchar, version integer, customer_id varchar, change varchar,
            changed_columns varchar, old_tier varchar, new_tier varchar,
            old_value_score decimal(38, 2), new_value_score decimal(38, 2),
            restated_at timestamptz, restated_by varchar, reason varchar, run_id varchar)"""
    )


def table_columns(conn, schema: str, table: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall()]


def _column_signature(conn, schema: str, table: str) -> list[tuple]:
    """Names and full types: PostgreSQL's data_type says only `numeric`, so an upgrade that changes a
    column's scale (fx_rate to 18 places, csat_12m to 4) must be seen in numeric_precision/scale."""
    return [tuple(r) for r in conn.execute(
        "select column_name, data_type, numeric_precision, numeric_scale, character_maximum_length "
        "from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table]).fetchall()]


def _replace_table(conn, table: str) -> None:
    """marts.<table> := marts_build.<table>, inside the caller's transaction."""
    target, source = f"{SCHEMA}.{quote_ident(table)}", f"{BUILD_SCHEMA}.{quote_ident(table)}"
    if getattr(conn, "dialect", "duckdb") == "postgres":
        if _column_signature(conn, SCHEMA, table) == _column_signature(conn, BUILD_SCHEMA, table):
            conn.execute(f"delete from {target}")
            conn.execute(f"insert into {target} select * from {source}")
            return
        conn.execute(f"drop table if exists {target}")
        conn.execute(f"create table {target} as select * from {source}")
        return
    kept = table + PUBLISHED_SUFFIX
    if table in _tables(conn, SCHEMA):  # a warehouse published before marts were views
        conn.execute(f"drop table {target}")
    conn.execute(f"drop view if exists {target}")
    conn.execute(f"drop table if exists {BUILD_SCHEMA}.{quote_ident(kept)}")
    conn.execute(f"alter table {source} rename to {quote_ident(kept)}")
    conn.execute(f"create view {target} as select * from {BUILD_SCHEMA}.{quote_ident(kept)}")


def _diff(conn) -> str:
    """customer-level comparison of the built month against a version of the record, on every column
    of the tier row (a restated name or account manager is a change too); the query takes three
    parameters: month, version, month."""
    recorded = {name for name, _ in table_columns(conn, SCHEMA, "published_tiers")}
    cols = [name for name, _ in table_columns(conn, BUILD_SCHEMA, "customer_tier_monthly")
            if name in recorded and name not in ("customer_id", "eval_month")]
    changed = " || ".join(
        f"case when o.{quote_ident(c)} is distinct from n.{quote_ident(c)} then '{c},' else '' end" for c in cols
    )
    return f"""
        select coalesce(n.customer_id, o.customer_id) as customer_id,
               case when o.customer_id is null then 'added' when n.customer_id is null then 'removed'
                    else 'changed' end as change,
               rtrim({changed}, ',') as changed_columns,
               o.tier as old_tier, n.tier as new_tier, o.value_score as old_value_score,
               n.value_score as new_value_score
        from (select * from {SCHEMA}.published_tiers where eval_month = ? and version = ?) as o
        full outer join (select * from {BUILD_SCHEMA}.customer_tier_monthly where eval_month = ?) as n
            on o.customer_id = n.customer_id
        where o.customer_id is null or n.customer_id is null or ({changed}) <> ''
    """


def publish(conn, month: str, run_id: str, restate: bool = False, reason: str | None = None,
            by: str | None = None, before_commit: Callable[[PublishResult], None] | None = None,
            owner: str | None = None) -> PublishResult:
    """Swap the checked build into `marts` and record the month, in one transaction.
    `before_commit(result)` runs inside it, seeing the new marts (the publish's files are
    written there, to temporary names): if it fails, nothing is published. With `owner`, the build
    must be the one that run claimed and checked (transform.build_claim)."""
    from keyaccounts.transform import build_claim

    # only the project's current mart models (a model since removed may linger in the build schema)
    models = {p.stem for p in (DBT_PROJECT_DIR / "models" / "marts").glob("*.sql")}
    built = [t for t in _tables(conn, BUILD_SCHEMA) if t in models]
    if "customer_tier_monthly" not in built:
        raise RuntimeError(f"nothing built in {BUILD_SCHEMA}")
    now = datetime.now(timezone.utc)
    conn.execute("begin transaction")
    try:
        if owner:
            build_claim.verify(conn, owner, checked=True)
        conn.execute(f"create schema if not exists {SCHEMA}")
        _ensure_record(conn)
        current = conn.execute(f"select max(version) from {SCHEMA}.published_tiers where eval_month = ?",
                               [month]).fetchone()[0]
        diff, keys = _diff(conn), [month, current, month]
        differs = conn.execute(f"select count(*) from ({diff}) as d", keys).fetchone()[0] if current else 0
        # a restatement identical to the latest version adds nothing: a retried or repeated restate
        # changes nothing the second time (operations.md)
        if current is None or (restate and differs):
            version = (current or 0) + 1
            changed = differs
            if current is not None:
                conn.execute(
                    f"insert into {SCHEMA}.published_tier_changes select ?, ?, customer_id, change, changed_columns, "
                    f"old_tier, new_tier, old_value_score, new_value_score, ?, ?, ?, ? from ({diff}) as d",
                    [month, version, now, by, reason, run_id] + keys,
                )
            conn.execute(
                f"insert into {SCHEMA}.published_tiers select *, ?, ?, ? "
                f"from {BUILD_SCHEMA}.customer_tier_monthly where eval_month = ?",
                [version, now, run_id, month],
            )
            result = PublishResult(month, "restated" if current is not None else "published", version, changed)
        else:
            result = PublishResult(month, "unchanged", current, 0, differs)
        # the record reads the build, so the marts are swapped after it (on DuckDB the swap
        # renames the built tables away)
        for table in built:
            _replace_table(conn, table)
        if before_commit is not None:
            before_commit(result)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return result
