-- docs/forecasts.md "Markov tier migration": the 3 x 3 transition matrix estimated at each
-- evaluation month M from the transitions of the look-back window (the
-- var forecast_lookback_months months ending with M): probability = transitions / from_total
-- (maximum likelihood). A from-tier nobody was in during the window keeps its customers
-- (probability 1 to itself): with no evidence of movement the chain leaves them in place.
with monthly as (
    select
        month_idx,
        from_tier,
        to_tier,
        sum(transitions) as transitions
    from {{ ref('int_tier_transition_counts') }}
    group by month_idx, from_tier, to_tier
),

windowed as (
    select
        m.month_idx,
        c.from_tier,
        c.to_tier,
        sum(c.transitions) as transitions,
        count(distinct c.month_idx) as months_observed
    from {{ ref('int_eval_months') }} as m
    inner join monthly as c
        on c.month_idx between m.month_idx - {{ var('forecast_lookback_months') - 1 }} and m.month_idx
    group by m.month_idx, c.from_tier, c.to_tier
),

months as (
    select
        month_idx,
        max(months_observed) as months_observed
    from windowed
    group by month_idx
),

tiers as (
    {{ tier_values() }}
),

grid as (
    select
        m.month_idx,
        m.months_observed,
        f.tier as from_tier,
        t.tier as to_tier,
        coalesce(w.transitions, 0) as transitions
    from months as m
    cross join tiers as f
    cross join tiers as t
    left join windowed as w
        on m.month_idx = w.month_idx and f.tier = w.from_tier and t.tier = w.to_tier
),

totals as (
    select
        *,
        sum(transitions) over (partition by month_idx, from_tier) as from_total
    from grid
)

select
    month_idx,
    cast({{ var('forecast_lookback_months') }} as integer) as lookback_months,
    cast(months_observed as integer) as months_observed,
    from_tier,
    to_tier,
    cast(transitions as bigint) as transitions,
    cast(from_total as bigint) as from_total,
    case
        when from_total = 0 and from_tier = to_tier then cast(1 as decimal(38, 16))
        when from_total = 0 then cast(0 as decimal(38, 16))
        else {{ safe_ratio('transitions', 'from_total', input_scale=0) }}
    end as probability
from totals
