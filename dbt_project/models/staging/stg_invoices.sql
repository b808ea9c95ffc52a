{{ config(materialized='incremental', unique_key='invoice_id', incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns') }}
-- incremental: only keys with new raw rows or a changed rate are re-staged (macros/incremental.sql)
with source as (
    {{ latest_raw_rows(
        source('raw', 'invoices'), 'invoice_id',
        restage_filter('invoice_id', source('raw', 'invoices'), 'invoice_date')
    ) }}
),

typed as (
    select
        trim(invoice_id) as invoice_id,
        trim(customer_id) as customer_id,
        nullif(trim(order_id), '') as order_id,
        cast(trim(invoice_date) as date) as invoice_date,
        cast(trim(due_date) as date) as due_date,
        coalesce(nullif(trim(currency), ''), '{{ var("default_currency") }}') as currency,
        {{ cast_input_decimal("trim(amount)") }} as amount,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
)

-- Converted with the rate of the invoice's month; its payments use the same rate.
select
    i.invoice_id,
    i.customer_id,
    i.order_id,
    i.invoice_date,
    i.due_date,
    i.currency,
    i.amount,
    {{ fx_rate_for('i.currency', 'fx.rate_to_reporting') }} as fx_rate,
    {{ to_reporting('i.amount', fx_rate_for('i.currency', 'fx.rate_to_reporting')) }} as amount_reporting,
    i.updated_at_utc,
    i.source_file,
    i.source_line,
    i._file_seq as source_file_seq,
    {{ restage_columns(source('raw', 'invoices')) }}
from typed as i
{{ join_month_rate('i', 'invoice_date') }}
