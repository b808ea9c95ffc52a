"""The forecast section of the HTML report (docs/forecasts.md): the Markov forecast of the tier
mix with its uncertainty band, the transition matrix behind it with its sample counts, the
back-test error, and the A customers most likely to drop out of A next month.

Like the rest of the report it reads the published marts only (`tier_forecast`,
`tier_transition_matrix`, `tier_forecast_backtest`, `tier_outlook_monthly`, `customer_tier_monthly`)
and computes no rule. The outlook of each state (tier, raw tier) is kept for every month, so a past
month's report lists the same customers whatever was built after it."""

from __future__ import annotations

import html

TIERS = "ABC"
TIER_COLORS = {"A": "#1b7837", "B": "#f1a340", "C": "#999999"}
BACKTEST_HORIZON = 3  # the headline figure: forecasts made three months before the month they forecast
BACKTEST_MONTHS = 12  # averaged over the latest twelve back-tested months
TOP_A_AT_RISK = 20
MARTS = ("tier_forecast", "tier_transition_matrix", "tier_forecast_backtest", "tier_outlook_monthly")


def _df(conn, sql: str, params: list):
    return conn.execute(sql, params).fetch_arrow_table().to_pandas()


def _text(value) -> str:
    return html.escape("" if value is None or value != value else str(value))


def _pct(value) -> str:
    return "" if value is None or value != value else f"{float(value) * 100:.1f}%"


def _published(conn) -> set[str]:
    rows = conn.execute("select table_name from information_schema.tables where table_schema = 'marts'").fetchall()
    return {r[0] for r in rows}


def backtest_summary(conn, month: str, horizon: int = BACKTEST_HORIZON) -> dict | None:
    """The back-test figure as of `month`: mean of mae_points over the latest BACKTEST_MONTHS
    back-tested months up to `month` at the horizon (the largest configured one below it when it
    is not configured), the latest month's figure, and how many months it averages."""
    horizons = [int(r[0]) for r in conn.execute(
        "select distinct horizon_months from marts.tier_forecast_backtest where eval_month <= ?", [month]).fetchall()]
    if not horizons:
        return None
    usable = [h for h in horizons if h <= horizon]
    horizon = max(usable) if usable else min(horizons)
    per_month = _df(conn, "select eval_month, max(mae_points) as mae_points, "
                          "avg(case when within_interval then 1.0 else 0.0 end) as covered "
                          "from marts.tier_forecast_backtest where horizon_months = ? and eval_month <= ? "
                          "group by eval_month order by eval_month", [horizon, month])
    recent = per_month.tail(BACKTEST_MONTHS)
    return {"horizon": horizon, "months": len(recent), "mae_points": float(recent["mae_points"].astype(float).mean()),
            "latest_month": recent["eval_month"].iloc[-1], "latest_mae_points": float(recent["mae_points"].iloc[-1]),
            "coverage": float(recent["covered"].astype(float).mean()), "per_month": per_month}


def forecast_section(conn, month: str, layout: dict) -> str:
    """HTML of the section (plotly.js is already on the page)."""
    import plotly.graph_objects as go

    head = "<h2>等级预测 Tier forecast (Markov migration)</h2>"
    if not set(MARTS) <= _published(conn):
        return head + "<p class='empty'>未发布预测 · no forecast published</p>"
    forecast = _df(conn, "select * from marts.tier_forecast where eval_month = ? order by horizon_months, tier",
                   [month])
    matrix = _df(conn, "select * from marts.tier_transition_matrix where eval_month = ? order by from_tier, to_tier",
                 [month])
    if forecast.empty or matrix.empty:
        return head + "<p class='empty'>首月无迁移数据 · no transitions yet (first evaluated month)</p>"
    parts = [head]

    # 1. the forecast mix: bars per tier, now and each horizon, with the uncertainty band
    first = forecast[forecast.horizon_months == forecast.horizon_months.min()]
    columns = [f"{month} 当前 now"] + [f"{t} (+{h})" for h, t in
                                        forecast[["horizon_months", "target_month"]].drop_duplicates().itertuples(
                                            index=False)]
    bars = []
    for tier in TIERS:
        now = first[first.tier == tier]
        ahead = forecast[forecast.tier == tier]
        shares = [float(now["current_share"].iloc[0])] + [float(v) for v in ahead["forecast_share"]]
        high = [0.0] + [float(h) - float(s) for h, s in zip(ahead["share_high"], ahead["forecast_share"])]
        low = [0.0] + [float(s) - float(lo) for lo, s in zip(ahead["share_low"], ahead["forecast_share"])]
        bars.append(go.Bar(x=columns, y=shares, name=f"{tier} 级", marker_color=TIER_COLORS[tier],
                           error_y=dict(type="data", symmetric=False, array=high, arrayminus=low)))
    fig = go.Figure(bars)
    fig.update_layout(title="预测等级结构 Forecast tier mix of today's customers (bars: expected share; "
                            "whiskers: the band, ±1.96 standard errors by default)",
                      barmode="group", yaxis_tickformat=".0%", **layout)
    parts.append(f"<div class='chart'>{fig.to_html(full_html=False, include_plotlyjs=False, div_id='forecast')}</div>")

    rows = "".join(
        f"<tr><td>{_text(r.target_month)} (+{int(r.horizon_months)})</td><td>{_text(r.tier)}</td>"
        f"<td>{_pct(r.forecast_share)}</td><td>{_pct(r.share_low)} – {_pct(r.share_high)}</td>"
        f"<td>{_text(r.forecast_customers)}</td></tr>" for r in forecast.itertuples(index=False))
    parts.append("<table><thead><tr><th>目标月 target month</th><th>等级</th><th>预测占比 share</th>"
                 "<th>区间 band</th><th>预计客户数 customers</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>")

    # 2. the matrix the forecast uses, with its sample counts
    cells = {(r.from_tier, r.to_tier): r for r in matrix.itertuples(index=False)}
    lookback, observed = int(matrix["lookback_months"].iloc[0]), int(matrix["months_observed"].iloc[0])
    body = ""
    for f in TIERS:
        tds = "".join(
            f"<td>{_pct(cells[(f, t)].probability)} ({int(cells[(f, t)].transitions)}/{int(cells[(f, t)].from_total)})"
            f"</td>" for t in TIERS)
        body += f"<tr><th>{f} →</th>{tds}</tr>"
    parts.append(f"<h3>迁移概率 Transition matrix (last {lookback} months, {observed} with transitions: "
                 f"probability, transitions / customers in the from-tier)</h3>"
                 f"<table><thead><tr><th></th>{''.join(f'<th>→ {t}</th>' for t in TIERS)}</tr></thead>"
                 f"<tbody>{body}</tbody></table>")

    # 3. back-test
    summary = backtest_summary(conn, month)
    if summary is None:
        parts.append("<p class='empty'>回测 back-test: 暂无 · no forecast has reached its month yet</p>")
    else:
        parts.append(
            f"<h3>回测 Back-test</h3><p class='backtest'>{summary['horizon']} 个月前的预测与实际等级结构的平均绝对误差 · "
            f"forecast made {summary['horizon']} months before vs the actual tier mix of the same customers: "
            f"<b>{summary['mae_points']:.2f}</b> share points mean absolute error over the last {summary['months']} "
            f"month(s) (latest, {_text(summary['latest_month'])}: {summary['latest_mae_points']:.2f}); "
            f"the actual share was inside the forecast band in {summary['coverage'] * 100:.0f}% of tier-months.</p>")
        per_month = summary["per_month"].tail(24)
        fig = go.Figure(go.Scatter(x=per_month["eval_month"], y=per_month["mae_points"].astype(float),
                                   mode="lines+markers", name="MAE"))
        fig.update_layout(title=f"回测误差 Back-test error, {summary['horizon']}-month forecasts (share points)",
                          yaxis_title="MAE (share points)", **{**layout, "height": 300})
        parts.append(f"<div class='chart'>{fig.to_html(full_html=False, include_plotlyjs=False, div_id='backtest')}</div>")

    # 4. the A customers most likely to drop out of A next month
    # the month's own states (tier_outlook_monthly keeps every month): a past month's report is the same
    # whatever was built after it
    at_risk = _df(conn, f"""
        select t.customer_id, t.customer_name, t.account_manager, t.raw_tier, o.prob_a_next, o.prob_b_next,
               o.prob_c_next, o.prob_down_next, t.value_rank, t.share_before, t.tier_change
        from marts.customer_tier_monthly as t
        join marts.tier_outlook_monthly as o
            on o.eval_month = t.eval_month and o.tier = t.tier and o.raw_tier = t.raw_tier
        where t.eval_month = ? and t.tier = 'A'
        order by o.prob_down_next desc, t.share_before desc nulls first, t.customer_id
        limit {TOP_A_AT_RISK}""", [month])
    parts.append("<h3>最可能掉出 A 级的客户 A customers most likely to drop out of A next month</h3>")
    if at_risk.empty:
        parts.append("<p class='empty'>无 · none</p>")
    else:
        rows = "".join(
            f"<tr><td>{_text(r.customer_id)}</td><td>{_text(r.customer_name)}</td><td>{_text(r.account_manager)}</td>"
            f"<td>{_text(r.raw_tier)}</td><td>{_text(r.tier_change)}</td><td><b>{_pct(r.prob_down_next)}</b></td>"
            f"<td>{_pct(r.prob_b_next)}</td><td>{_pct(r.prob_c_next)}</td><td>{_text(r.value_rank)}</td>"
            f"<td>{_pct(r.share_before)}</td></tr>" for r in at_risk.itertuples(index=False))
        parts.append("<table><thead><tr><th>客户 ID</th><th>客户名称</th><th>客户经理</th><th>原始等级 raw</th>"
                     "<th>本月变动</th><th>掉出 A 概率 P(drop)</th><th>P(B)</th><th>P(C)</th><th>排名 rank</th>"
                     f"<th>share before</th></tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(parts)
