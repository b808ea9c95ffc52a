-- metrics.md "Migration": per month, transitions from last month's tier to this month's
-- over customers evaluated in both; every from x to pair is listed (0 when none), for every
-- evaluation month after the first (also when nobody was evaluated in the month before).
with moves as (
    select
        eval_month,
        previous_tier as from_tier,
        tier as to_tier,
        count(*) as customers
    from {{ ref('customer_tier_monthly') }}
    where previous_tier is not null
    group by eval_month, previous_tier, tier
),

months as (
    select {{ month_label('em.month_start') }} as eval_month
    from {{ ref('int_eval_months') }} as em
    where em.month_idx > (select min(f.month_idx) from {{ ref('int_eval_months') }} as f)
),

tiers as (
    select 'A' as tier
    union all
    select 'B'
    union all
    select 'C'
),

grid as (
    select
        m.eval_month,
        f.tier as from_tier,
        t.tier as to_tier
    from months as m
    cross join tiers as f
    cross join tiers as t
),

counted as (
    select
        g.eval_month,
        g.from_tier,
        g.to_tier,
        coalesce(mv.customers, 0) as customers
    from grid as g
    left join moves as mv
        on g.eval_month = mv.eval_month and g.from_tier = mv.from_tier and g.to_tier = mv.to_tier
)

select
    eval_month,
    from_tier,
    to_tier,
    cast(customers as bigint) as customers,
    {{ publish_round(
        safe_ratio('customers', 'sum(customers) over (partition by eval_month, from_tier)', input_scale=0), 4
    ) }} as share_of_from
from counted
