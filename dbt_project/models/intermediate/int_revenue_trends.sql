-- docs/forecasts.md "Regression potential", stage 1 (built only with potential_model = regression):
-- each customer's own least-squares line through its monthly revenue over the history window
-- (the var potential_history_months months ending with M), from the month of its first completed
-- order on (months without an order count as 0). The database's regression aggregates (regr_*)
-- fit the line; int_potential_regression shrinks the trend toward its industry and scope.
with monthly_revenue as (
    select
        customer_id,
        month_idx,
        sum(net_amount_reporting) as revenue
    from {{ ref('int_orders_completed') }}
    group by customer_id, month_idx
),

history as (
    select
        f.customer_id,
        m.month_idx,
        cast(coalesce(r.revenue, 0) as {{ double_type() }}) as revenue
    from {{ ref('int_customer_first_orders') }} as f
    inner join {{ ref('int_eval_months') }} as m
        on m.month_idx >= {{ month_index('f.first_order_date') }}
    left join monthly_revenue as r
        on f.customer_id = r.customer_id and m.month_idx = r.month_idx
),

fitted as (
    select
        customer_id,
        month_idx,
        regr_count(revenue, month_idx) over w as history_months,
        regr_avgx(revenue, month_idx) over w as mean_month_idx,
        regr_avgy(revenue, month_idx) over w as mean_revenue,
        regr_sxx(revenue, month_idx) over w as sxx,
        regr_syy(revenue, month_idx) over w as syy,
        regr_sxy(revenue, month_idx) over w as sxy
    from history
    window w as (
        partition by customer_id order by month_idx
        range between {{ var('potential_history_months') - 1 }} preceding and current row
    )
)

select
    s.customer_id,
    s.month_idx,
    c.industry,
    s.scope,
    cast(f.history_months as integer) as history_months,
    f.mean_month_idx,
    f.mean_revenue,
    f.sxx,
    case when f.sxx > 0 then f.sxy / f.sxx end as slope,
    case when f.sxx > 0 then greatest(f.syy - f.sxy * f.sxy / f.sxx, 0) else 0 end as residual_ss
from {{ ref('int_customer_months') }} as s
inner join fitted as f
    on s.customer_id = f.customer_id and s.month_idx = f.month_idx
inner join {{ ref('stg_customers') }} as c
    on s.customer_id = c.customer_id
