-- metrics.md "Assigned tier": each change says how the tier follows from the previous month's tier and
-- this month's raw tier (A < B < C: a better tier sorts first), and previous_tier is last month's tier.
-- Rows breaking this fail the build, so nothing is published.
with tiers as (
    select
        customer_id,
        eval_month,
        tier,
        raw_tier,
        previous_tier,
        tier_change,
        months_below,
        lag(tier) over (partition by customer_id order by eval_month) as last_month_tier
    from {{ ref('customer_tier_monthly') }}
)

select
    customer_id,
    eval_month,
    tier_change
from tiers
where
    previous_tier is distinct from last_month_tier
    or (tier_change = 'new' and previous_tier is not null)
    or (tier_change != 'new' and tier_change != 'override' and previous_tier is null)
    or (tier_change = 'promoted' and not (tier < previous_tier and tier = raw_tier))
    or (tier_change = 'unchanged' and not (tier = previous_tier and raw_tier = tier))
    or (
        tier_change = 'held'
        and not (
            tier = previous_tier and raw_tier > tier
            and months_below between 1 and {{ var('grace_months') | int }}
        )
    )
    or (tier_change = 'demoted' and not (tier > previous_tier and raw_tier >= tier))
