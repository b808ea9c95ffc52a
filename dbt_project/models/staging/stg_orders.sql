{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns') }}
-- incremental: only keys with new raw rows or a changed rate are re-staged (macros/incremental.sql)
with source as (
    {{ latest_raw_rows(
        source('raw', 'orders'), 'order_id',
        restage_filter('order_id', source('raw', 'orders'), 'order_date')
    ) }}
),

typed as (
    select
        trim(order_id) as order_id,
        trim(customer_id) as customer_id,
        nullif(trim(contract_id), '') as contract_id,
        cast(trim(order_date) as date) as order_date,
        trim(status) as status,
        coalesce(nullif(trim(currency), ''), '{{ var("default_currency") }}') as currency,
        {{ cast_input_decimal("trim(list_amount)") }} as list_amount,
        {{ cast_input_decimal("trim(net_amount)") }} as net_amount,
        {{ cast_input_decimal("nullif(trim(cost_amount), '')") }} as cost_amount,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
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
    {{ to_reporting('o.list_amount', fx_rate_for('o.currency', 'fx.rate_to_reporting')) }} as list_amount_reporting,
    {{ to_reporting('o.net_amount', fx_rate_for('o.currency', 'fx.rate_to_reporting')) }} as net_amount_reporting,
    {{ to_reporting('o.cost_amount', fx_rate_for('o.currency', 'fx.rate_to_reporting')) }} as cost_amount_reporting,
    o.updated_at_utc,
    o.source_file,
    o.source_line,
    o._file_seq as source_file_seq,
    {{ restage_columns(source('raw', 'orders')) }}
from typed as o
{{ join_month_rate('o', 'order_date') }}
