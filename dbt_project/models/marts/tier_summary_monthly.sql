-- Per month and tier: how many customers, their share of customers and of V, revenue,
-- mean collection rate and mean NPS (means over customers where the measure is known).
with tiers as (
    select 'A' as tier
    union all
    select 'B'
    union all
    select 'C'
),

months as (
    select distinct eval_month from {{ ref('customer_tier_monthly') }}
),

rows_ as (
    select
        t.eval_month,
        t.tier,
        t.value_score,
        r.collection_rate_12m,
        l.nps_12m,
        s.revenue_12m
    from {{ ref('customer_tier_monthly') }} as t
    inner join {{ ref('customer_receivables_monthly') }} as r
        on t.customer_id = r.customer_id and t.eval_month = r.eval_month
    inner join {{ ref('customer_loyalty_monthly') }} as l
        on t.customer_id = l.customer_id and t.eval_month = l.eval_month
    inner join {{ ref('customer_sales_monthly') }} as s
        on t.customer_id = s.customer_id and t.eval_month = s.eval_month
),

per_tier as (
    select
        m.eval_month,
        tr.tier,
        count(x.tier) as customers,
        coalesce(sum(case when x.value_score > 0 then x.value_score end), 0) as value_score_sum,
        coalesce(sum(x.revenue_12m), 0) as revenue_12m,
        avg(x.collection_rate_12m) as mean_collection_rate,
        avg(x.nps_12m) as mean_nps
    from months as m
    cross join tiers as tr
    left join rows_ as x
        on m.eval_month = x.eval_month and tr.tier = x.tier
    group by m.eval_month, tr.tier
)

select
    eval_month,
    tier,
    cast(customers as bigint) as customers,
    {{ publish_round(safe_ratio('customers', 'sum(customers) over (partition by eval_month)', input_scale=0), 4) }}
        as share_of_customers,
    {{ publish_round(
        safe_ratio('value_score_sum', 'sum(value_score_sum) over (partition by eval_month)', input_scale=2), 4
    ) }} as share_of_value,
    cast(revenue_12m as {{ money_type() }}) as revenue_12m,
    {{ publish_round('mean_collection_rate', 4) }} as mean_collection_rate,
    {{ publish_round('mean_nps', 1) }} as mean_nps
from per_tier
