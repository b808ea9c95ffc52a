-- docs/forecasts.md "Customer outlook": each customer's probabilities of being A, B or C next
-- month, as of the latest evaluated month (one month only: at 200,000 customers a customer x
-- month history would be the largest table of every publish). The probabilities are those of the
-- customer's state (tier, raw tier) in tier_outlook_monthly, which keeps every month.
with latest as (
    select max(month_idx) as month_idx from {{ ref('int_tier_transition_matrix') }}
),

customers as (
    select
        a.customer_id,
        a.month_idx,
        a.tier,
        a.raw_tier,
        {{ month_label(month_start_from_index('a.month_idx')) }} as eval_month
    from {{ ref('int_tier_assignment') }} as a
    inner join latest as m on a.month_idx = m.month_idx
)

select
    a.customer_id,
    o.eval_month,
    a.tier,
    a.raw_tier,
    o.prob_a_next,
    o.prob_b_next,
    o.prob_c_next,
    o.prob_down_next,
    o.state_transitions
from customers as a
inner join {{ ref('tier_outlook_monthly') }} as o
    on a.eval_month = o.eval_month and a.tier = o.tier and a.raw_tier = o.raw_tier
