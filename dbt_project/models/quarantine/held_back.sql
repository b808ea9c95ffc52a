-- sources.md: rows that passed the contract but cannot count yet. An order or invoice in a
-- currency without a rate for its month (missing_fx_rate) and a payment in another currency
-- than its invoice (currency_mismatch) are held here; staging is rebuilt on every run, so a
-- held-back order or invoice counts as soon as its rate arrives.
select
    'orders' as feed,
    order_id as record_id,
    customer_id,
    currency,
    {{ month_label('order_month') }} as row_month,
    'missing_fx_rate' as reason,
    source_file,
    source_line,
    source_file_seq
from {{ ref('stg_orders') }}
where fx_rate is null

union all

select
    'invoices' as feed,
    invoice_id as record_id,
    customer_id,
    currency,
    {{ month_label("cast(date_trunc('month', invoice_date) as date)") }} as row_month,
    'missing_fx_rate' as reason,
    source_file,
    source_line,
    source_file_seq
from {{ ref('stg_invoices') }}
where fx_rate is null

union all

select
    'payments' as feed,
    payment_id as record_id,
    customer_id,
    currency,
    {{ month_label("cast(date_trunc('month', payment_date) as date)") }} as row_month,
    not_applied_reason as reason,
    source_file,
    source_line,
    source_file_seq
from {{ ref('int_payments_applied') }}
where not_applied_reason = 'currency_mismatch'

union all

-- an interaction closed before it was opened (docs/programme.md): counts nowhere
select
    'interactions' as feed,
    interaction_id as record_id,
    customer_id,
    cast(null as varchar) as currency,
    {{ month_label("cast(date_trunc('month', opened_on) as date)") }} as row_month,
    'closed_before_opened' as reason,
    source_file,
    source_line,
    source_file_seq
from {{ ref('stg_interactions') }}
where closed_before_opened
