-- Complaints, visits and escalations per customer and month as of end(M) (docs/programme.md),
-- beside the visits the customer's package owes; null measures where the feed does not cover M.
select
    i.customer_id,
    {{ month_label('p.eval_month') }} as eval_month,
    p.tier,
    p.package_code,
    i.interactions_covered,
    i.complaints_12m,
    i.complaints_recent,
    i.complaints_prior,
    i.open_complaints,
    i.complaints_closed_12m,
    {{ publish_round('i.median_hours_to_close', 1) }} as median_hours_to_close,
    i.escalations_12m,
    i.visits_12m,
    i.visits_per_year,
    i.visits_expected_12m,
    i.complaints_rising,
    i.under_visited
from {{ ref('int_interaction_windows') }} as i
inner join {{ ref('int_customer_packages') }} as p
    on i.customer_id = p.customer_id and i.month_idx = p.month_idx
