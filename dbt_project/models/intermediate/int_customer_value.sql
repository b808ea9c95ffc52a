-- metrics.md "Customer value V = f(a, b, d, e)", unrounded, with every input beside it.
with base as (
    select
        s.customer_id,
        s.month_idx,
        s.eval_month,
        s.scope,
        sales.revenue_12m,
        sales.gross_profit_12m,
        sales.revenue_prev_12m,
        sales.growth_rate,
        rec.billed_due_12m,
        rec.collected_12m,
        rec.collection_rate_12m{% if potential_model() == 'regression' %},
        reg.projected_revenue_12m{% endif %}
    from {{ ref('int_customer_months') }} as s
    inner join {{ ref('int_sales_windows') }} as sales
        on s.customer_id = sales.customer_id and s.month_idx = sales.month_idx
    inner join {{ ref('int_receivables_windows') }} as rec
        on s.customer_id = rec.customer_id and s.month_idx = rec.month_idx
    {%- if potential_model() == 'regression' %}
    -- d by regression (var potential_model, docs/forecasts.md)
    left join {{ ref('int_potential_regression') }} as reg
        on s.customer_id = reg.customer_id and s.month_idx = reg.month_idx
    {%- endif %}
),

coefficients as (
    select
        *,
        {{ nature_coefficient('scope') }} as a_nature,
        {{ current_level() }} as b_current,
        {{ potential_factor('revenue_12m', 'revenue_prev_12m') }} as potential_factor,
        {{ correction_coefficient('collected_12m', 'billed_due_12m') }} as e_correction
    from base
),

levels as (
    select
        *,
        {{ potential_level('b_current', 'revenue_12m', 'revenue_prev_12m') }} as d_potential
    from coefficients
)

select
    *,
    {{ customer_value('a_nature', 'b_current', 'd_potential', 'e_correction') }} as v_unrounded
from levels
