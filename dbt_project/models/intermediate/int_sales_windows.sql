-- metrics.md "Sales": rolling W(M) and P(M) measures per evaluated customer and month,
-- unrounded (customer_sales_monthly publishes them rounded).
with spine as (
    select
        customer_id,
        month_idx,
        month_end
    from {{ ref('int_customer_months') }}
),

activity as (
    select
        customer_id,
        month_idx,
        sum(net_amount_reporting) as revenue,
        sum(net_amount_reporting - cost_amount_reporting) as gross_profit,
        sum(list_amount_reporting) as list_amount,
        count(*) as orders,
        max(order_date) as last_order_date
    from {{ ref('int_orders_completed') }}
    group by customer_id, month_idx
),

combined as (
    select
        customer_id,
        month_idx,
        revenue,
        gross_profit,
        list_amount,
        orders,
        last_order_date,
        0 as is_spine
    from activity
    union all
    select
        customer_id,
        month_idx,
        cast(0 as {{ money_type() }}) as revenue,
        cast(0 as {{ money_type() }}) as gross_profit,
        cast(0 as {{ money_type() }}) as list_amount,
        0 as orders,
        cast(null as date) as last_order_date,
        1 as is_spine
    from spine
),

per_month as (
    select
        customer_id,
        month_idx,
        sum(revenue) as revenue,
        coalesce(sum(gross_profit), 0) as gross_profit,
        sum(list_amount) as list_amount,
        sum(orders) as orders,
        max(last_order_date) as last_order_date,
        max(is_spine) as is_spine
    from combined
    group by customer_id, month_idx
),

windowed as (
    select
        customer_id,
        month_idx,
        is_spine,
        sum(revenue) over w as revenue_12m,
        coalesce(sum(revenue) over p, 0) as revenue_prev_12m,
        sum(gross_profit) over w as gross_profit_12m,
        sum(list_amount) over w as list_amount_12m,
        sum(orders) over w as orders_12m,
        sum(case when orders > 0 then 1 else 0 end) over w as active_months_12m,
        max(last_order_date) over to_date as last_order_date
    from per_month
    window
        w as ({{ window_w() }}),
        p as ({{ window_p() }}),
        to_date as ({{ window_to_date() }})
),

-- a contract once per customer and month before the window join (orders share contracts and
-- months; count(distinct) skips a null contract anyway)
contract_months as (
    select distinct
        customer_id,
        month_idx,
        contract_id
    from {{ ref('int_orders_completed') }}
    where contract_id is not null
),

contracts as (
    select
        s.customer_id,
        s.month_idx,
        count(distinct o.contract_id) as contracts_12m
    from spine as s
    inner join contract_months as o
        on
            s.customer_id = o.customer_id
            and o.month_idx between s.month_idx - {{ var('window_months') - 1 }} and s.month_idx
    group by s.customer_id, s.month_idx
)

select
    s.customer_id,
    s.month_idx,
    cast(w.revenue_12m as {{ money_type() }}) as revenue_12m,
    cast(w.revenue_prev_12m as {{ money_type() }}) as revenue_prev_12m,
    cast(w.gross_profit_12m as {{ money_type() }}) as gross_profit_12m,
    cast(w.list_amount_12m as {{ money_type() }}) as list_amount_12m,
    cast(w.orders_12m as bigint) as orders_12m,
    cast(coalesce(c.contracts_12m, 0) as bigint) as contracts_12m,
    cast(w.active_months_12m as integer) as active_months_12m,
    {{ safe_ratio('w.revenue_12m', 'w.list_amount_12m') }} as price_realization_12m,
    {{ safe_ratio('w.revenue_12m - w.revenue_prev_12m', 'w.revenue_prev_12m') }} as growth_rate,
    w.last_order_date,
    -- as of end(M): an order after the cut-off is not known yet in M (metrics.md)
    case when f.first_order_date <= s.month_end then f.first_order_date end as first_order_date,
    -- tenure: months from the first completed order's month to M, both included
    case
        when f.first_order_date is null or f.first_order_date > s.month_end then 0
        else cast(s.month_idx - {{ month_index('f.first_order_date') }} + 1 as integer)
    end as tenure_months
from spine as s
inner join windowed as w
    on s.customer_id = w.customer_id and s.month_idx = w.month_idx
left join contracts as c
    on s.customer_id = c.customer_id and s.month_idx = c.month_idx
left join {{ ref('int_customer_first_orders') }} as f
    on s.customer_id = f.customer_id
