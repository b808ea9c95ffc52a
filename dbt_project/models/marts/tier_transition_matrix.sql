-- docs/forecasts.md "Markov tier migration": the transition matrix estimated at each month from
-- the transitions of its look-back window, with the sample counts behind every probability.
select
    {{ month_label(month_start_from_index('month_idx')) }} as eval_month,
    lookback_months,
    months_observed,
    from_tier,
    to_tier,
    transitions,
    from_total,
    case when from_total > 0 then {{ publish_round('probability', 4) }} end as probability,
    -- binomial standard error of a multinomial cell: sqrt(p (1 - p) / n)
    case
        when from_total > 0
            then {{ publish_round(std_error(safe_ratio(
                prob_product('probability', '1 - probability'), 'from_total'
            )), 4) }}
    end as std_error
from {{ ref('int_tier_transition_matrix') }}
