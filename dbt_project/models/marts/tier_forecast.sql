-- docs/forecasts.md "Markov tier migration": the tier mix of the customers evaluated at M,
-- projected var forecast_horizons months ahead with the matrix estimated at M, with a standard
-- error (matrix estimation and outcome scatter together) and a normal band of
-- var forecast_interval_z standard errors, clipped to [0, 1].
with errors as (
    select
        *,
        {{ std_error('variance_matrix + variance_outcome') }} as std_error,
        {{ std_error('variance_matrix') }} as std_error_matrix,
        {{ std_error('variance_outcome') }} as std_error_outcome
    from {{ ref('int_tier_forecast') }}
)

select
    {{ month_label(month_start_from_index('month_idx')) }} as eval_month,
    cast(horizon as integer) as horizon_months,
    {{ month_label(month_start_from_index('(month_idx + horizon)')) }} as target_month,
    tier,
    cohort_customers,
    current_customers,
    {{ publish_round('current_share', 4) }} as current_share,
    {{ publish_round('forecast_share', 4) }} as forecast_share,
    {{ round_exact('forecast_share * cohort_customers', 1) }} as forecast_customers,
    {{ publish_round('std_error', 4) }} as std_error,
    {{ publish_round('std_error_matrix', 4) }} as std_error_matrix,
    {{ publish_round('std_error_outcome', 4) }} as std_error_outcome,
    {{ publish_round(
        'greatest(forecast_share - cast(' ~ var('forecast_interval_z') ~ ' as decimal(10, 4)) * std_error, 0)', 4
    ) }} as share_low,
    {{ publish_round(
        'least(forecast_share + cast(' ~ var('forecast_interval_z') ~ ' as decimal(10, 4)) * std_error, 1)', 4
    ) }} as share_high
from errors
