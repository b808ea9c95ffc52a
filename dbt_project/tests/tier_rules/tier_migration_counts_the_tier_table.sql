-- metrics.md "Migration": tier_migration_monthly counts, per month, the customers evaluated in both
-- months by last month's tier and this month's. So its sums over to_tier (over from_tier) are the
-- customers of each last-month tier (this-month tier) among those with a previous tier; and the
-- summary's shares are shares. Rows breaking this fail the build, so nothing is published.
with tier_rows as (
    select
        eval_month,
        previous_tier,
        tier
    from {{ ref('customer_tier_monthly') }}
    where previous_tier is not null
),

margins as (
    select
        eval_month,
        'from ' || from_tier as margin,
        sum(customers) as customers
    from {{ ref('tier_migration_monthly') }}
    group by eval_month, from_tier
    union all
    select
        eval_month,
        'to ' || to_tier as margin,
        sum(customers) as customers
    from {{ ref('tier_migration_monthly') }}
    group by eval_month, to_tier
),

expected as (
    select
        eval_month,
        'from ' || previous_tier as margin,
        count(*) as customers
    from tier_rows
    group by eval_month, previous_tier
    union all
    select
        eval_month,
        'to ' || tier as margin,
        count(*) as customers
    from tier_rows
    group by eval_month, tier
)

select
    coalesce(m.eval_month, e.eval_month) as eval_month,
    coalesce(m.margin, e.margin) as margin
from margins as m
full outer join expected as e
    on m.eval_month = e.eval_month and m.margin = e.margin
where coalesce(m.customers, 0) != coalesce(e.customers, 0)
union all
select
    eval_month,
    tier as margin
from {{ ref('tier_summary_monthly') }}
where
    share_of_customers not between 0 and 1
    or share_of_value not between 0 and 1
