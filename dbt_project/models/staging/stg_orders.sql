with source as (
    select * from {{ source('raw', 'orders') }}
),

typed as (
    select
        trim(order_id) as order_id,
        trim(customer_id) as customer_id,
        nullif(trim(contract_id), '') as contract_id,
        cast(trim(order_date) as date) as order_date,
        trim(status) as status,
        coalesce(nullif(trim(currency), ''), '{{ var("reporting_currency") }}') as currency,
        cast(trim(list_amount) as {{ input_decimal_type() }}) as list_amount,
        cast(trim(net_amount) as {{ input_decimal_type() }}) as net_amount,
        cast(nullif(trim(cost_amount), '') as {{ input_decimal_type() }}) as cost_amount,
        {{ parse_timestamp_utc('updated_at') }} as updated_at_utc,
        {{ load_metadata() }}
    from source
),

deduplicated as (
    {{ latest_row('typed', ['order_id']) }}
),

current_rows as (
    select * from deduplicated
    where _dedupe_rank = 1
)

-- Amounts converted with the rate of the order's own month (metrics.md).
select
    o.order_id,
    o.customer_id,
    o.contract_id,
    o.order_date,
    cast(date_trunc('month', o.order_date) as date) as order_month,
    o.status,
    o.currency,
    o.list_amount,
    o.net_amount,
    o.cost_amount,
    {{ fx_rate_for('o.currency', 'fx.rate_to_reporting') }} as fx_rate,
    o.list_amount * {{ fx_rate_for('o.currency', 'fx.rate_to_reporting') }} as list_amount_reporting,
    o.net_amount * {{ fx_rate_for('o.currency', 'fx.rate_to_reporting') }} as net_amount_reporting,
    o.cost_amount * {{ fx_rate_for('o.currency', 'fx.rate_to_reporting') }} as cost_amount_reporting,
    o.updated_at_utc,
    o.source_file,
    o.source_line
from current_rows as o
{{ join_month_rate('o', 'order_date') }}
