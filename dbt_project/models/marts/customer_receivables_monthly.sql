select
    r.customer_id,
    {{ month_label('m.eval_month') }} as eval_month,
    r.billed_due_12m,
    r.collected_12m,
    r.paid_on_time_12m,
    {{ publish_round('r.collection_rate_12m', 4) }} as collection_rate_12m,
    {{ publish_round('r.on_time_rate_12m', 4) }} as on_time_rate_12m,
    r.outstanding_end,
    r.aging_not_due,
    r.aging_overdue_1_30,
    r.aging_overdue_31_60,
    r.aging_overdue_61_90,
    r.aging_overdue_90_plus,
    r.open_invoices,
    {{ publish_round(safe_ratio('r.outstanding_end * 365', 's.revenue_12m'), 4) }} as dso
from {{ ref('int_receivables_windows') }} as r
inner join {{ ref('int_customer_months') }} as m
    on r.customer_id = m.customer_id and r.month_idx = m.month_idx
inner join {{ ref('int_sales_windows') }} as s
    on r.customer_id = s.customer_id and r.month_idx = s.month_idx
