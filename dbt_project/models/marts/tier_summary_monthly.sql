-- Per month and tier: how many customers, their share of customers and of V, revenue,
-- mean collection rate and mean NPS (means over customers where the measure is known).
with tiers as (
    select 'A' as tier
    union all
    select 'B'
    union all
    select 'C'
),

-- every evaluation month, also one before the first customer signed (0 customers per tier)
months as (
    select {{ month_label('month_start') }} as eval_month from {{ ref('int_eval_months') }}
),

-- the means are of the unrounded measures (metrics.md: formulas use unrounded inputs), from the
-- intermediates, and rounded once when published
rows_ as (
    select
        t.eval_month,
        t.tier,
        t.value_score,
        r.collection_rate_12m,
        l.nps_12m,
        s.revenue_12m
    from {{ ref('customer_tier_monthly') }} as t
    inner join {{ ref('int_customer_months') }} as m
        on t.customer_id = m.customer_id and t.eval_month = {{ month_label('m.eval_month') }}
    inner join {{ ref('int_receivables_windows') }} as r
        on m.customer_id = r.customer_id and m.month_idx = r.month_idx
    inner join {{ ref('int_loyalty_windows') }} as l
        on m.customer_id = l.customer_id and m.month_idx = l.month_idx
    inner join {{ ref('int_sales_windows') }} as s
        on m.customer_id = s.customer_id and m.month_idx = s.month_idx
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
    {{ publish_round('mean_nps', 1) }} as mean_nps,
    -- the tier lines the month was built with (metrics.md: A up to 80% of V, B up to 95%), for the
    -- report's Pareto curve and for readers who changed them
    cast({{ var('tier_a_share') }} as decimal(7, 6)) as tier_a_share,
    cast({{ var('tier_b_share') }} as decimal(7, 6)) as tier_b_share
from per_tier
