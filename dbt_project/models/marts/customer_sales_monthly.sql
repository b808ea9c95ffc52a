select
    s.customer_id,
    {{ month_label('m.eval_month') }} as eval_month,
    s.revenue_12m,
    s.revenue_prev_12m,
    s.gross_profit_12m,
    s.list_amount_12m,
    s.orders_12m,
    s.contracts_12m,
    s.active_months_12m,
    {{ publish_round('s.price_realization_12m', 4) }} as price_realization_12m,
    {{ publish_round('s.growth_rate', 4) }} as growth_rate,
    s.last_order_date,
    s.first_order_date,
    s.tenure_months
from {{ ref('int_sales_windows') }} as s
inner join {{ ref('int_customer_months') }} as m
    on s.customer_id = m.customer_id and s.month_idx = m.month_idx
