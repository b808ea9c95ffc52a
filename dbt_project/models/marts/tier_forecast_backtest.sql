-- docs/forecasts.md "Back-test": each forecast of tier_forecast whose target month has been
-- evaluated, against what happened: the tier mix at the target month of the same cohort (the
-- customers evaluated when the forecast was made). Errors are in share points (1 point = 1% of
-- the cohort); mae_points is the mean absolute error over the three tiers.
with cohort_moves as (
    select
        month_idx,
        {{ later_tier_columns() }}
    from {{ ref('int_tier_assignment') }}
    window customer_months as (partition by customer_id order by month_idx)
),

outcomes as (
    {{ later_tier_counts('cohort_moves') }}
),

last_month as (
    select max(month_idx) as month_idx from {{ ref('int_eval_months') }}
),

compared as (
    select
        f.month_idx,
        f.horizon,
        f.tier,
        f.cohort_customers,
        f.forecast_share,
        {{ std_error('f.variance_matrix + f.variance_outcome') }} as std_error,
        coalesce(o.customers, 0) as actual_customers,
        {{ safe_ratio('coalesce(o.customers, 0)', 'f.cohort_customers', input_scale=0) }} as actual_share
    from {{ ref('int_tier_forecast') }} as f
    -- only forecasts whose target month is evaluated
    inner join last_month as lm on f.month_idx + f.horizon <= lm.month_idx
    left join outcomes as o
        on f.month_idx = o.month_idx and f.horizon = o.horizon and f.tier = o.tier
),

errors as (
    select
        *,
        100 * (forecast_share - actual_share) as error_points,
        100 * abs(forecast_share - actual_share) as abs_error_points
    from compared
)

select
    {{ month_label(month_start_from_index('(month_idx + horizon)')) }} as eval_month,
    cast(horizon as integer) as horizon_months,
    {{ month_label(month_start_from_index('month_idx')) }} as forecast_month,
    tier,
    cohort_customers,
    {{ publish_round('forecast_share', 4) }} as forecast_share,
    cast(actual_customers as bigint) as actual_customers,
    {{ publish_round('actual_share', 4) }} as actual_share,
    {{ publish_round('error_points', 2) }} as error_points,
    {{ publish_round('abs_error_points', 2) }} as abs_error_points,
    {{ publish_round(
        safe_ratio('sum(abs_error_points) over (partition by month_idx, horizon)', '3'), 2
    ) }} as mae_points,
    abs(forecast_share - actual_share) <= cast({{ var('forecast_interval_z') }} as decimal(10, 4)) * std_error
        as within_interval
from errors
