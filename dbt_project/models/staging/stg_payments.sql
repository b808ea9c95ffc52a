{{ config(materialized='incremental', unique_key='payment_id', incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns') }}
-- incremental: only keys with new raw rows or a changed rate are re-staged (macros/incremental.sql)
with source as (
    {{ latest_raw_rows(
        source('raw', 'payments'), 'payment_id',
        restage_filter('payment_id', source('raw', 'payments'))
    ) }}
),

typed as (
    select
        trim(payment_id) as payment_id,
        trim(invoice_id) as invoice_id,
        trim(customer_id) as customer_id,
        cast(trim(payment_date) as date) as payment_date,
        -- a payment is in its invoice's currency: blank stays blank (int_payments_applied fills it)
        nullif(trim(currency), '') as currency,
        {{ cast_input_decimal("trim(amount)") }} as amount,
        nullif(trim(method), '') as payment_method,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
)

select
    payment_id,
    invoice_id,
    customer_id,
    payment_date,
    currency,
    amount,
    payment_method,
    updated_at_utc,
    source_file,
    source_line,
    _file_seq as source_file_seq,
    {{ restage_columns(source('raw', 'payments')) }}
from typed
