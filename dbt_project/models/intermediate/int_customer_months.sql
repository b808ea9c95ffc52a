-- metrics.md "Population": a customer in the master is evaluated in every month from the
-- month it signed on (signed_on <= end(M)), with or without orders.
select
    c.customer_id,
    c.scope,
    m.month_idx,
    m.month_start as eval_month,
    m.month_end
from {{ ref('stg_customers') }} as c
inner join {{ ref('int_eval_months') }} as m
    on c.signed_on <= m.month_end
