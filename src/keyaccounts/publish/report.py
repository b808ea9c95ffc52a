"""The monthly HTML report (outputs.md): self-contained, offline (plotly.js is embedded, no
CDN), with Chinese labels. It reads the published marts only: it shows, never computes, a
business rule."""

from __future__ import annotations

import html
from pathlib import Path

from keyaccounts.publish.forecast_report import forecast_section
from keyaccounts.publish.managers import manager_section
from keyaccounts.publish.pending import PendingFiles, write_now
from keyaccounts.publish.wap import table_columns

TIER_COLORS = {"A": "#1b7837", "B": "#f1a340", "C": "#999999"}
FONT = "Noto Sans CJK SC, Noto Sans SC, Microsoft YaHei, PingFang SC, sans-serif"


def _df(conn, sql: str, params: list):
    return conn.execute(sql, params).fetch_arrow_table().to_pandas()


def _table(df, columns: list[str], headers: list[str], limit: int | None = None, rest: str = "") -> str:
    """An HTML table of `df`; with `limit`, its first rows and a line saying how many more are where."""
    if df.empty:
        return "<p class='empty'>无 · none</p>"
    shown = df if limit is None else df.head(limit)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None or v != v else str(v))}</td>" for v in row) + "</tr>"
        for row in shown[columns].itertuples(index=False)
    )
    more = (f"<p class='empty'>… {len(df) - len(shown)} more in {html.escape(rest)}</p>"
            if len(shown) < len(df) else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _tier_lines(conn, month: str) -> list[tuple[float, str]]:
    """The A and B lines the month's marts were built with (tier_summary_monthly), as (share, label);
    the project's own where the marts predate that column."""
    from keyaccounts.config import project_vars

    columns = {name for name, _ in table_columns(conn, "marts", "tier_summary_monthly")}
    row = conn.execute("select max(tier_a_share), max(tier_b_share) from marts.tier_summary_monthly "
                       "where eval_month = ?", [month]).fetchone() if "tier_a_share" in columns else None
    if row is None or row[0] is None:
        row = (project_vars()["tier_a_share"], project_vars()["tier_b_share"])
    return [(float(share), f"{float(share) * 100:g}% ({tier})") for share, tier in zip(row, "AB")]


def version_line(version) -> str:
    """How the report begins its line naming the published version it shows (also how a re-run
    recognises a report of the current version: publish.exports.report_files_of_version)."""
    return f"<p>版本 version {version} ·"


def build_report(conn, month: str, out_dir: Path, pending: PendingFiles | None = None) -> Path:
    """Write report_<month>.html (with `pending`: under a temporary name until the commit)."""
    if pending is None:
        return write_now(lambda p: build_report(conn, month, out_dir, p))
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    # every query ordered in full: the charts embed the rows in their order, and a month's report is
    # the same file every time (DuckDB returns unordered rows in any order)
    tiers = _df(conn, "select * from marts.published_tiers where eval_month = ? and version = "
                      "(select max(version) from marts.published_tiers where eval_month = ?) order by customer_id",
                [month, month])
    # the charts of the month come from the record too (outputs.md: what was published), so a report
    # re-written after the marts moved on (`export` after an unrestated re-run) still shows its version;
    # earlier months show their own latest published version, or the marts where never published
    summary = _df(conn, """
        with recorded as (
            select eval_month, tier, count(*) as customers from marts.published_tiers as p
            where eval_month <= ?
              and version = (select max(version) from marts.published_tiers as q where q.eval_month = p.eval_month)
            group by eval_month, tier)
        select eval_month, tier, customers from recorded
        union all
        select eval_month, tier, customers from marts.tier_summary_monthly
        where eval_month <= ? and eval_month not in (select eval_month from recorded)
        order by eval_month, tier""", [month, month])
    # over the customers evaluated in both months (metrics.md "Migration"): those with a previous tier
    migration = tiers[tiers["previous_tier"].notna()].groupby(["previous_tier", "tier"]).size() \
        .rename("customers").reset_index().rename(columns={"previous_tier": "from_tier", "tier": "to_tier"})
    receivables = tiers[tiers["collection_rate_12m"].notna()].sort_values(["tier", "customer_id"])
    layout = dict(font=dict(family=FONT), margin=dict(l=50, r=20, t=60, b=40), height=380)
    figures = []

    # 1. tier mix and its change over the last 13 months
    recent = summary[summary["eval_month"] >= sorted(summary["eval_month"].unique())[-13:][0]] if not summary.empty \
        else summary
    fig = go.Figure([go.Bar(x=recent[recent.tier == t]["eval_month"], y=recent[recent.tier == t]["customers"],
                            name=f"{t} 级", marker_color=TIER_COLORS[t]) for t in "ABC"])
    fig.update_layout(title="等级分布 Tier mix (customers per tier)", barmode="stack", **layout)
    figures.append(fig)

    # 2. Pareto curve of V with the 80% and 95% lines
    ranked = tiers[tiers["value_rank"].notna()].sort_values("value_rank")
    total = float(ranked["value_score"].sum()) or 1.0
    cum = ranked["value_score"].astype(float).cumsum() / total
    share_customers = [i / max(len(ranked), 1) for i in range(1, len(ranked) + 1)]
    fig = go.Figure([go.Scatter(x=share_customers, y=list(cum), mode="lines", name="累计价值 cumulative V")])
    for line, label in _tier_lines(conn, month):
        fig.add_hline(y=line, line_dash="dash", annotation_text=label)
    fig.update_layout(title="帕累托曲线 Pareto curve of customer value V", xaxis_title="客户占比 share of customers",
                      yaxis_title="价值占比 share of V", xaxis_tickformat=".0%", yaxis_tickformat=".0%", **layout)
    figures.append(fig)

    # 3. migration matrix as a heat map
    grid = migration.pivot_table(index="from_tier", columns="to_tier", values="customers", aggfunc="sum",
                                 fill_value=0) \
        if not migration.empty else None
    z = [[int(grid.loc[f, t]) if grid is not None and f in grid.index and t in grid.columns else 0 for t in "ABC"]
         for f in "ABC"]
    fig = go.Figure(go.Heatmap(z=z, x=[f"→ {t}" for t in "ABC"], y=[f"{f} →" for f in "ABC"], colorscale="Blues",
                               text=z, texttemplate="%{text}"))
    fig.update_layout(title="等级迁移 Tier migration (last month → this month)", yaxis_autorange="reversed", **layout)
    figures.append(fig)

    # 4. collection-rate distribution by tier
    fig = go.Figure([go.Box(y=receivables[receivables.tier == t]["collection_rate_12m"].astype(float),
                            name=f"{t} 级", marker_color=TIER_COLORS[t]) for t in "ABC"])
    fig.update_layout(title="回款率分布 Collection rate by tier", yaxis_tickformat=".0%", **layout)
    if receivables.empty:  # no invoice due in any customer's window (or no invoices or payments delivered)
        fig.update_layout(yaxis_range=[0, 1])
        fig.add_annotation(text="无回款率 no collection rate this month: no invoice was due in the 12 months "
                                "(or no invoices / payments were delivered)", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    figures.append(fig)

    # every customer whose tier is not last month's: promoted, demoted, or moved by an override
    movers = tiers[tiers["previous_tier"].notna() & (tiers["tier"] != tiers["previous_tier"])] \
        .sort_values(["value_rank", "customer_id"], na_position="last")
    at_risk = tiers[(tiers["tier"].isin(["A", "B"])) & (tiers["risk_flags"].fillna("") != "")] \
        .sort_values("value_rank")
    mix = " · ".join(f"{t}: {int((tiers['tier'] == t).sum())}" for t in "ABC") if not tiers.empty else ""

    # fixed div ids (plotly draws random ones): the same month's report is the same file each time
    charts = "".join(f"<div class='chart'>{f.to_html(full_html=False, include_plotlyjs=False, div_id=f'chart-{i}')}"
                     "</div>" for i, f in enumerate(figures, 1))
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>大客户分级报告 Key-account tiers {html.escape(month)}</title>
<script>{get_plotlyjs()}</script>
<style>body{{font-family:{FONT};margin:24px;color:#222}} .chart{{margin:12px 0}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}} .empty{{color:#888}}</style></head>
<body>
<h1>大客户分级报告 · Key-account tiers {html.escape(month)}</h1>
{version_line(int(tiers['version'].max()) if not tiers.empty else '-')} 客户 customers {len(tiers)} · {mix}</p>
{charts}
<h2>等级变动 Top movers</h2>
{_table(movers, ['customer_id', 'customer_name', 'previous_tier', 'tier', 'tier_change', 'reason'],
        ['客户 ID', '客户名称', '上月', '本月', '变动', '原因 reason'], limit=30,
        rest=f"tiers_{month}.csv (tier other than previous_tier)")}
<h2>风险大客户 At-risk key accounts (A/B with risk flags)</h2>
{_table(at_risk, ['customer_id', 'customer_name', 'account_manager', 'tier', 'risk_flags',
                  'collection_rate_12m', 'nps_12m'],
        ['客户 ID', '客户名称', '客户经理', '等级', '风险', '回款率', 'NPS'], limit=100,
        rest=f"tiers_{month}.csv (tier A or B with risk_flags)")}
{forecast_section(conn, month, layout)}
{manager_section(conn, month)}
</body></html>"""
    out_dir.mkdir(parents=True, exist_ok=True)
    pending.sweep(out_dir, "report_*.tmp")
    path = out_dir / f"report_{month}.html"
    pending.temp_for(path).write_text(page, encoding="utf-8")
    return path
