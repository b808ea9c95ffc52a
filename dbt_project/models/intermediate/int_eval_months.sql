-- metrics.md "Population": evaluation months run from the month of the earliest loaded
-- completed order (any customer) up to the month asked for (var through_month).
with recursive bounds as (
    select
        cast(min({{ month_index('order_date') }}) as integer) as first_idx,
        cast({{ through_month_index() }} as integer) as last_idx
    from {{ ref('stg_orders') }}
    where status = 'completed' and fx_rate is not null
),

months (month_idx) as (
    select first_idx from bounds
    where first_idx is not null and first_idx <= last_idx
    union all
    select months.month_idx + 1
    from months
    cross join bounds
    where months.month_idx < bounds.last_idx
)

select
    month_idx,
    {{ month_start_from_index('month_idx') }} as month_start,
    {{ month_end(month_start_from_index('month_idx')) }} as month_end
from months
