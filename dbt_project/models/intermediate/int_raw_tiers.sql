-- metrics.md "Raw tier": rank customers with value_score > 0 by value_score desc, ties by
-- customer_id (byte order); share_before = running sum of value_score over strictly better
-- ranks / the month's total; A below the A line, B below the B line, else C.
with scored as (
    select
        customer_id,
        month_idx,
        eval_month,
        v_unrounded,
        {{ round_exact('v_unrounded', 2) }} as value_score
    from {{ ref('int_customer_value') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by month_idx order by value_score desc, {{ byte_order('customer_id') }} asc
        ) as value_rank
    from scored
    where value_score > 0
),

shares as (
    select
        *,
        coalesce(sum(value_score) over (
            partition by month_idx order by value_rank rows between unbounded preceding and 1 preceding
        ), 0) as value_before,
        sum(value_score) over (partition by month_idx) as value_total
    from ranked
)

select
    s.customer_id,
    s.month_idx,
    s.eval_month,
    s.v_unrounded,
    s.value_score,
    r.value_rank,
    r.value_before,
    r.value_total,
    {{ safe_ratio('r.value_before', 'r.value_total', input_scale=2) }} as share_before,
    case
        when r.value_rank is null then 'C'
        when r.value_before < {{ var('tier_a_share') }} * r.value_total then 'A'
        when r.value_before < {{ var('tier_b_share') }} * r.value_total then 'B'
        else 'C'
    end as raw_tier
from scored as s
left join shares as r
    on s.customer_id = r.customer_id and s.month_idx = r.month_idx
