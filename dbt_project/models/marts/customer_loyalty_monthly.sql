select
    l.customer_id,
    {{ month_label('m.eval_month') }} as eval_month,
    l.responses_12m,
    l.nps_responses_12m,
    l.promoters_12m,
    l.detractors_12m,
    {{ publish_round('l.nps_12m', 1) }} as nps_12m,
    {{ publish_round('l.csat_12m', 4) }} as csat_12m,
    l.tenure_months,
    l.active_months_12m,
    {{ publish_round('l.loyalty_frequency', 4) }} as loyalty_frequency,
    {{ publish_round('l.loyalty_tenure', 4) }} as loyalty_tenure,
    {{ publish_round('l.loyalty_satisfaction', 4) }} as loyalty_satisfaction,
    {{ publish_round('l.loyalty_score_unrounded', 1) }} as loyalty_score
from {{ ref('int_loyalty_windows') }} as l
inner join {{ ref('int_customer_months') }} as m
    on l.customer_id = m.customer_id and l.month_idx = m.month_idx
