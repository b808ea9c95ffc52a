-- Invoices, de-duplicated, converted at the invoice month's rate (payments use it too).
select
    i.invoice_id,
    i.customer_id,
    i.order_id,
    i.invoice_date,
    i.due_date,
    i.currency,
    i.amount,
    i.fx_rate,
    i.amount_reporting,
    c.customer_id is not null as is_known_customer,
    i.updated_at_utc,
    i.source_file,
    i.source_line
from {{ ref('stg_invoices') }} as i
left join {{ ref('stg_customers') }} as c
    on i.customer_id = c.customer_id
where i.fx_rate is not null
