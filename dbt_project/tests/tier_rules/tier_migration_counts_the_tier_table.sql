-- metrics.md "Migration": tier_migration_monthly counts, per month, the customers evaluated in both
-- months by last month's tier and this month's; the summary's shares are shares. Rows breaking this
-- fail the build, so nothing is published.
with counted as (
    select
        eval_month,
        previous_tier as from_tier,
        tier as to_tier,
        count(*) as customers
    from {{ ref('customer_tier_monthly') }}
    where previous_tier is not null
    group by eval_month, previous_tier, tier
)

select
    coalesce(m.eval_month, c.eval_month) as eval_month,
    coalesce(m.from_tier, c.from_tier) as from_tier,
    coalesce(m.to_tier, c.to_tier) as to_tier
from {{ ref('tier_migration_monthly') }} as m
full outer join counted as c
    on m.eval_month = c.eval_month and m.from_tier = c.from_tier and m.to_tier = c.to_tier
where coalesce(m.customers, 0) != coalesce(c.customers, 0)
union all
select
    eval_month,
    tier as from_tier,
    tier as to_tier
from {{ ref('tier_summary_monthly') }}
where
    share_of_customers not between 0 and 1
    or share_of_value not between 0 and 1
