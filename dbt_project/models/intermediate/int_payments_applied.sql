{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_keys('payment_id', changed_payment_ids()) }}") }}
-- incremental by payment_id: only keys whose staged rows changed are rebuilt (macros/incremental.sql)
-- metrics.md "Receivables": a payment settles part of its invoice, in the invoice's
-- currency, converted with the invoice's month rate. A payment without a currency is in its
-- invoice's currency. Payments whose invoice is unknown (or in another currency) are not
-- applied; receivables_exceptions reports them.
with payments as (
    select
        p.payment_id,
        p.invoice_id,
        p.customer_id,
        p.payment_date,
        coalesce(p.currency, i.currency, '{{ var("default_currency") }}') as currency,
        p.amount,
        p.payment_method,
        i.invoice_id as known_invoice_id,
        i.currency as invoice_currency,
        i.fx_rate as invoice_fx_rate,
        p.source_file,
        p.source_line,
        p.source_file_seq
    from {{ ref('stg_payments') }} as p
    left join {{ ref('stg_invoices') }} as i
        on p.invoice_id = i.invoice_id
    where true
    {{ only_changed_keys('payment_id', changed_payment_ids(), 'p') }}
)

select
    payment_id,
    invoice_id,
    customer_id,
    payment_date,
    currency,
    amount,
    payment_method,
    known_invoice_id is not null and invoice_currency = currency and invoice_fx_rate is not null as is_applied,
    case
        when known_invoice_id is null then 'unknown_invoice'
        when invoice_currency <> currency then 'currency_mismatch'
        when invoice_fx_rate is null then 'invoice_missing_fx_rate'
    end as not_applied_reason,
    invoice_fx_rate,
    case
        when invoice_currency = currency then {{ to_reporting('amount', 'invoice_fx_rate') }}
    end as amount_reporting,
    source_file,
    source_line,
    source_file_seq,
    {{ intermediate_columns([ref('stg_payments'), ref('stg_invoices')]) }}
from payments
