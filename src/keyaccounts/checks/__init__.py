"""Data checks with Great Expectations 1.x on the month being published.

The suites are versioned JSON in `expectations/`. They validate pandas DataFrames read from
the `marts_build` schema (GX's SQL datasource is unreliable on DuckDB, so we read the rows
ourselves), before publish swaps them into `marts`. Thresholds are read from the dbt vars,
never restated here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from keyaccounts.config import PROJECT_ROOT, RunConfig, add_months, month_end, project_vars
from keyaccounts.errors import KeyAccountsError
from keyaccounts.publish.wap import BUILD_SCHEMA

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
BLOCKING = ("customer_tier_monthly", "reconciliation")
WARNING = ("tier_mix_swing",)
ROUNDING_TOLERANCE = 0.00005  # share_before is published to 4 decimals


class ChecksFailed(KeyAccountsError):
    exit_code = 8


@dataclass
class CheckReport:
    month: str
    results: dict[str, dict] = field(default_factory=dict)  # suite -> {success, failures}
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def dbt_vars(cfg: RunConfig) -> dict:
    return {**project_vars(), **cfg.dbt_vars}


def _month_bounds(month: str, window: int) -> tuple[str, str]:
    """first day of the window's first month, last day of `month` (ISO dates)."""
    return add_months(month, -(window - 1)) + "-01", month_end(month).isoformat()


def frames(conn, month: str, v: dict) -> dict:
    """The DataFrames the suites validate (DuckDB or PostgreSQL warehouse: portable SQL)."""
    start, end = _month_bounds(month, int(v["window_months"]))
    evaluated = "select customer_id from staging.stg_customers where signed_on <= cast(? as date)"
    tiers = conn.execute(
        f"""select t.*,
               case when t.value_rank is null then t.raw_tier = 'C'
                    when t.raw_tier = 'A' then t.share_before <= ? + ?
                    when t.raw_tier = 'B' then t.share_before >= ? - ? and t.share_before <= ? + ?
                    else t.share_before >= ? - ? end as raw_tier_matches_share,
               (t.value_rank is null) = (t.value_score <= 0) as ranked_when_value_positive,
               t.customer_id in ({evaluated}) as is_evaluated_customer
            from {BUILD_SCHEMA}.customer_tier_monthly as t where t.eval_month = ?""",
        [v["tier_a_share"], ROUNDING_TOLERANCE, v["tier_a_share"], ROUNDING_TOLERANCE, v["tier_b_share"],
         ROUNDING_TOLERANCE, v["tier_b_share"], ROUNDING_TOLERANCE, end, month],
    ).df()
    recon = conn.execute(
        f"""with ev as ({evaluated})
            select 'revenue_12m vs completed orders in the window' as "check",
                   (select coalesce(sum(revenue_12m), 0) from {BUILD_SCHEMA}.customer_sales_monthly
                    where eval_month = ?) as mart_total,
                   (select coalesce(sum(net_amount_reporting), 0) from staging.stg_orders
                    where status = 'completed' and fx_rate is not null and order_date between ? and ?
                      and customer_id in (select customer_id from ev)) as staging_total
            union all
            select 'billed_due_12m vs invoices due in the window',
                   (select coalesce(sum(billed_due_12m), 0) from {BUILD_SCHEMA}.customer_receivables_monthly
                    where eval_month = ?),
                   (select coalesce(sum(amount_reporting), 0) from staging.stg_invoices
                    where fx_rate is not null and due_date between ? and ?
                      and customer_id in (select customer_id from ev))
            union all
            select 'tier rows vs evaluated customers',
                   (select count(*) from {BUILD_SCHEMA}.customer_tier_monthly where eval_month = ?),
                   (select count(*) from ev)""",
        [end, month, start, end, month, start, end, month],
    ).df()
    recon["difference"] = (recon["mart_total"].astype(float) - recon["staging_total"].astype(float)).round(6)
    swing = conn.execute(
        f"""select c.tier, abs(c.share_of_customers - coalesce(p.share_of_customers, c.share_of_customers))
                   as share_change
            from {BUILD_SCHEMA}.tier_summary_monthly as c
            left join {BUILD_SCHEMA}.tier_summary_monthly as p
                on p.tier = c.tier
                and p.eval_month = ?
            where c.eval_month = ?""", [add_months(month, -1), month]).df()
    return {"customer_tier_monthly": tiers, "reconciliation": recon, "tier_mix_swing": swing}


def _suite(name: str, overrides: dict):
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    suite = ExpectationSuite(name=spec["name"], meta=spec.get("meta", {}))
    for e in spec["expectations"]:
        kwargs = {**e["kwargs"], **overrides.get(e["type"], {})}
        suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=kwargs, meta=e.get("meta")))
    return suite


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network at run time
    for name in ("great_expectations", "great_expectations._docs_decorators",
                 "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)


def validate(name: str, df, index_columns: list[str], overrides: dict | None = None) -> dict:
    _quiet_gx()
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_gx()  # again: importing GX resets some of its loggers
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(f"keyaccounts_{name}")
    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("month").get_batch(
        batch_parameters={"dataframe": df})
    result = batch.validate(_suite(name, overrides or {}), result_format={
        "result_format": "COMPLETE", "unexpected_index_column_names": index_columns,
        "partial_unexpected_count": 5})
    return result.to_json_dict()


def _failures(result: dict) -> list[str]:
    out = []
    for r in result["results"]:
        if r["success"]:
            continue
        cfg = r["expectation_config"]
        column = cfg["kwargs"].get("column") or cfg["kwargs"].get("column_list") or ""
        res = r.get("result", {})
        rows = [",".join(str(v) for v in (i.values() if isinstance(i, dict) else [i]))
                for i in (res.get("unexpected_index_list") or [])[:3]]
        where = f" on {res.get('unexpected_count', '?')} rows (e.g. {'; '.join(rows)})" if rows else ""
        if not rows and "observed_value" in res:
            where = f" (observed {res['observed_value']})"
        out.append(f"{cfg['type']}({column}){where}")
    return out


def run_checks(conn, cfg: RunConfig) -> CheckReport:
    """Validate the month in marts_build; write results; raise ChecksFailed on a blocking failure."""
    v = dbt_vars(cfg)
    data = frames(conn, cfg.through, v)
    report = CheckReport(cfg.through)
    out_dir = Path(cfg.exports_dir) / "checks" / cfg.through
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {"customer_tier_monthly": ["customer_id"], "reconciliation": ["check"], "tier_mix_swing": ["tier"]}
    overrides = {"tier_mix_swing": {"expect_column_values_to_be_between": {
        "max_value": float(v.get("tier_mix_swing_warning", 0.10))}}}
    for name in BLOCKING + WARNING:
        result = validate(name, data[name], index[name], overrides.get(name))
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
        report.files.append(path)
        failures = _failures(result)
        report.results[name] = {"success": result["success"], "failures": failures}
        if name in WARNING and failures:
            report.warnings += [f"{name}: {f}" for f in failures]
    blocking = [f"{n}: {f}" for n in BLOCKING for f in report.results[n]["failures"]]
    if blocking:
        more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
        raise ChecksFailed(f"data check failed, nothing published: {blocking[0]}{more}", details=str(out_dir))
    return report
