"""docs/forecasts.md "Regression potential", stage 2 (built only with potential_model = regression,
on DuckDB: dbt-postgres cannot run Python models).

For each evaluation month M and customer c, int_revenue_trends gives the customer's own
least-squares line through its monthly revenue y_t over its history window (n months). On the
revenue relative to the customer's mean, z_t = y_t / mean_c, the line's slope is the customer's
relative trend g_c (share of its mean monthly revenue gained per month). The model is

    g_c = x_c' gamma + u_c + e_c,   u_c ~ N(0, tau2),   e_c ~ N(0, v_c),

x_c = intercept + industry + scope effects (dummies), u_c the customer's own deviation, e_c the
sampling error of its OLS slope, v_c = s2_c / Sxx_c (s2_c: the customer's residual variance of z,
pooled with its industry's as if that were PRIOR_DF more residual degrees of freedom; Sxx_c: the
spread of its months). tau2 is the DerSimonian-Laird moment estimate for meta-regression, gamma the
weighted least-squares fit with weights 1 / (tau2 + v_c) (statsmodels). The trend used is the
empirical-Bayes (posterior mean) estimate

    g~_c = m_c + w_c (g_c - m_c),   m_c = x_c' gamma,   w_c = tau2 / (tau2 + v_c),

so a short or noisy history is pulled toward its industry and scope mean; a customer with fewer than
potential_min_history_months months gets m_c alone. The projection over the next window_months
months is sum_k max(0, mean_c (1 + g~_c (M + k - tbar_c))), tbar_c the mean month of its history.
int_customer_value turns it into d (docs/forecasts.md).
"""

import numpy as np
import pandas as pd
import statsmodels.api as sm

PRIOR_DF = 4  # residual degrees of freedom the industry's pooled variance counts as


def _cells(frame):
    """Each customer's (industry, scope) cell (an index into the design) and the design: one row
    per cell, intercept + industry and scope dummies (the first category of each is the baseline)."""
    keys = frame[["industry", "scope"]].fillna("unknown").astype(str)
    table = keys.drop_duplicates().sort_values(["industry", "scope"]).reset_index(drop=True)
    design = sm.add_constant(pd.get_dummies(table, drop_first=True, dtype=float), has_constant="add")
    cell = keys.merge(table.reset_index(), on=["industry", "scope"], how="left")["index"].to_numpy()
    return cell, design


def _cell_wls(g, w, cell, design):
    """WLS of g on the design with weights w. Every customer of a cell has the same design row, so
    the fit on the cells' weighted means with the cells' summed weights gives the same estimates.
    Also returns the cells' sums of w and w^2 and their weighted means."""
    sums = pd.DataFrame({"w": w, "wg": w * g, "w2": w * w}).groupby(cell).sum()
    mean = sums["wg"] / sums["w"]
    fit = sm.WLS(mean, design.loc[sums.index], weights=sums["w"], hasconst=True).fit()
    return fit, sums, mean


def _trend_prior(g, v, cell, design):
    """tau2 (the DerSimonian-Laird moment estimator for meta-regression) and the random-effects WLS
    fit of g on the design, weights 1 / (tau2 + v)."""
    w = 1.0 / v
    fixed, sums, mean = _cell_wls(g, w, cell, design)
    within = (w * (g - mean.reindex(cell).to_numpy()) ** 2).sum()
    q = within + fixed.ssr  # sum of w (g - x' gamma)^2 over the customers
    dof = len(g) - (fixed.df_model + 1)
    x = design.loc[sums.index].to_numpy()
    leverage = np.einsum("ij,jk,ik->i", x, np.asarray(fixed.normalized_cov_params), x)  # x' (X'WX)^-1 x
    denominator = w.sum() - (sums["w2"].to_numpy() * leverage).sum()  # sum w - tr((X'WX)^-1 X'W^2 X)
    tau2 = max(0.0, (q - dof) / denominator) if dof > 0 and denominator > 0 else 0.0
    model, _, _ = _cell_wls(g, 1.0 / (tau2 + v), cell, design)
    return tau2, model


def fit_month(frame, horizon, min_months):
    """One evaluation month: the shrunk trends and the projection, one row per customer."""
    frame = frame.sort_values("customer_id").reset_index(drop=True)
    month = frame["month_idx"].iloc[0]
    mean = frame["mean_revenue"].astype(float)
    n = frame["history_months"].astype(float)
    has_revenue = mean > 0
    own = has_revenue & (n >= max(min_months, 2)) & (frame["sxx"] > 0)

    g_own = pd.Series(np.nan, index=frame.index)
    g_own[has_revenue & (frame["sxx"] > 0)] = frame["slope"] / mean
    # residual variance of z = y / mean, pooled within the industry
    rss = frame["residual_ss"].astype(float) / mean.where(has_revenue) ** 2
    dof = (n - 2).clip(lower=0)
    industry = frame["industry"].fillna("unknown")
    pooled = (rss.where(own, 0).groupby(industry).transform("sum")
              / dof.where(own, 0).groupby(industry).transform("sum"))
    overall = rss.where(own, 0).sum() / max(dof.where(own, 0).sum(), 1)
    pooled = pooled.where(np.isfinite(pooled) & (pooled > 0), overall)
    s2 = (rss.fillna(0) + PRIOR_DF * pooled) / (dof + PRIOR_DF)
    v = s2 / frame["sxx"].where(frame["sxx"] > 0)

    cell, design = _cells(frame)
    prior = pd.Series(0.0, index=frame.index)
    tau2 = 0.0
    fit = own & np.isfinite(v) & (v > 0) & np.isfinite(g_own)
    if fit.sum() >= 2:
        use = fit.to_numpy()
        tau2, model = _trend_prior(g_own[fit].to_numpy(), v[fit].to_numpy(), cell[use], design)
        prior = pd.Series(np.asarray(model.predict(design))[cell], index=frame.index)
    weight = pd.Series(0.0, index=frame.index)  # 0: the industry/scope mean alone
    if tau2 > 0:
        weight[fit] = tau2 / (tau2 + v[fit])
    g = prior + weight * (g_own.where(fit, 0) - prior.where(fit, 0))
    g = g.where(has_revenue, 0.0)

    steps = np.arange(1, horizon + 1, dtype=float)
    ahead = month + steps[None, :] - frame["mean_month_idx"].astype(float).to_numpy()[:, None]
    monthly = mean.where(has_revenue, 0).to_numpy()[:, None] * (1 + g.to_numpy()[:, None] * ahead)
    projected = np.clip(monthly, 0, None).sum(axis=1)

    return pd.DataFrame({
        "customer_id": frame["customer_id"],
        "month_idx": frame["month_idx"].astype("int64"),
        "history_months": frame["history_months"].astype("int64"),
        "mean_revenue": mean,
        "trend_own": g_own.where(fit) * mean,
        "trend_prior": prior.where(has_revenue) * mean,
        "trend": g * mean,
        "trend_relative": g,
        "shrinkage_weight": weight,
        "between_variance": tau2,
        "projected_revenue_12m": projected,
    })


def model(dbt, session):
    dbt.config(materialized="table")
    horizon = int(dbt.config.get("window_months"))
    min_months = int(dbt.config.get("potential_min_history_months"))
    trends = dbt.ref("int_revenue_trends").df()
    months = [fit_month(frame, horizon, min_months) for _, frame in trends.groupby("month_idx", sort=True)]
    columns = ["customer_id", "month_idx", "history_months", "mean_revenue", "trend_own", "trend_prior", "trend",
               "trend_relative", "shrinkage_weight", "between_variance", "projected_revenue_12m"]
    return pd.concat(months, ignore_index=True) if months else pd.DataFrame(columns=columns)
