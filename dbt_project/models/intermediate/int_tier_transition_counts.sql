-- docs/forecasts.md "Markov tier migration": the monthly transitions the chain is estimated from.
-- A transition is a customer evaluated in two consecutive months: last month's tier (and raw
-- tier) -> this month's tier, as in tier_migration_monthly. A new customer enters the chain
-- from its second month; no customer leaves it (metrics.md "Population" keeps every customer
-- evaluated from the month it signed on).
with steps as (
    select
        month_idx,
        previous_tier as from_tier,
        tier as to_tier,
        lag(raw_tier) over (partition by customer_id order by month_idx) as from_raw_tier,
        lag(month_idx) over (partition by customer_id order by month_idx) as from_month_idx
    from {{ ref('int_tier_assignment') }}
)

select
    month_idx,
    from_tier,
    from_raw_tier,
    to_tier,
    cast(count(*) as bigint) as transitions
from steps
where from_tier is not null and from_month_idx = month_idx - 1
group by month_idx, from_tier, from_raw_tier, to_tier
