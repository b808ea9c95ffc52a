-- Orders, de-duplicated (latest updated_at wins), converted at the order month's rate.
-- Rows waiting for an fx rate are not here (see receivables_exceptions, missing_fx_rate).
select
    o.order_id,
    o.customer_id,
    o.contract_id,
    o.order_date,
    {{ month_label('o.order_month') }} as order_month,
    o.status,
    o.currency,
    o.list_amount,
    o.net_amount,
    o.cost_amount,
    o.fx_rate,
    o.list_amount_reporting,
    o.net_amount_reporting,
    o.cost_amount_reporting,
    c.customer_id is not null as is_known_customer,
    o.updated_at_utc,
    o.source_file,
    o.source_line
from {{ ref('stg_orders') }} as o
left join {{ ref('stg_customers') }} as c
    on o.customer_id = c.customer_id
where o.fx_rate is not null
