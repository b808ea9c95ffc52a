-- metrics.md tenure: each customer's first completed order (up to end(through_month)).
select
    customer_id,
    min(order_date) as first_order_date
from {{ ref('int_orders_completed') }}
group by customer_id
