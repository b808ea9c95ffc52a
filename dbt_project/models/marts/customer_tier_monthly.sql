-- The monthly tier table: raw tier from V, assigned tier after hysteresis and overrides,
-- risk flags, and a sentence saying why.
with joined as (
    select
        m.customer_id,
        c.customer_name,
        c.account_manager,
        m.eval_month as month_start,
        m.month_end,
        r.value_score,
        r.value_rank,
        r.share_before,
        t.raw_tier,
        t.tier,
        t.previous_tier,
        t.tier_change,
        t.months_below,
        o.override_reason,
        o.approved_by,
        rec.collection_rate_12m,
        rec.collected_12m,
        rec.billed_due_12m,
        loy.nps_12m,
        loy.promoters_12m,
        loy.detractors_12m,
        loy.loyalty_score_unrounded,
        sales.growth_rate,
        sales.revenue_12m,
        sales.revenue_prev_12m,
        sales.last_order_date,
        ix.complaints_rising,
        ix.under_visited
    from {{ ref('int_customer_months') }} as m
    inner join {{ ref('stg_customers') }} as c on m.customer_id = c.customer_id
    inner join {{ ref('int_raw_tiers') }} as r on m.customer_id = r.customer_id and m.month_idx = r.month_idx
    inner join {{ ref('int_tier_assignment') }} as t on m.customer_id = t.customer_id and m.month_idx = t.month_idx
    inner join {{ ref('int_receivables_windows') }} as rec
        on m.customer_id = rec.customer_id and m.month_idx = rec.month_idx
    inner join {{ ref('int_loyalty_windows') }} as loy
        on m.customer_id = loy.customer_id and m.month_idx = loy.month_idx
    inner join {{ ref('int_sales_windows') }} as sales
        on m.customer_id = sales.customer_id and m.month_idx = sales.month_idx
    inner join {{ ref('int_interaction_windows') }} as ix
        on m.customer_id = ix.customer_id and m.month_idx = ix.month_idx
    left join {{ ref('stg_tier_overrides') }} as o
        on m.customer_id = o.customer_id and m.eval_month = o.eval_month and t.tier_change = 'override'
),

flagged as (
    select
        *,
        {{ risk_flags() }} as risk_flags
    from joined
)

select
    customer_id,
    customer_name,
    account_manager,
    {{ month_label('month_start') }} as eval_month,
    value_score,
    value_rank,
    {{ publish_round('share_before', 4) }} as share_before,
    raw_tier,
    tier,
    previous_tier,
    tier_change,
    months_below,
    {{ publish_round('collection_rate_12m', 4) }} as collection_rate_12m,
    {{ publish_round('nps_12m', 1) }} as nps_12m,
    {{ publish_round('loyalty_score_unrounded', 1) }} as loyalty_score,
    risk_flags,
    {{ tier_reason() }} as reason
from flagged
