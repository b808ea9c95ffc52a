select
    v.customer_id,
    {{ month_label('v.eval_month') }} as eval_month,
    v.scope,
    v.revenue_12m,
    v.gross_profit_12m,
    v.revenue_prev_12m,
    {{ publish_round('v.growth_rate', 4) }} as growth_rate,
    v.billed_due_12m,
    v.collected_12m,
    {{ publish_round('v.collection_rate_12m', 4) }} as collection_rate_12m,
    v.a_nature,
    v.b_current,
    v.potential_factor,
    v.d_potential,
    v.e_correction,
    v.v_unrounded as v_value,
    {{ round_exact('v.v_unrounded', 2) }} as value_score
from {{ ref('int_customer_value') }} as v
