-- metrics.md "Sales": only completed orders count, on their order_date; rows held back
-- for a missing fx rate count nowhere; nothing after end(through_month) counts.
select
    order_id,
    customer_id,
    contract_id,
    order_date,
    cast({{ month_index('order_date') }} as integer) as month_idx,
    net_amount_reporting,
    list_amount_reporting,
    cost_amount_reporting
from {{ ref('stg_orders') }}
where
    status = 'completed'
    and fx_rate is not null
    and order_date <= {{ through_month_end() }}
