-- metrics.md "Receivables": a payment settles part of its invoice, in the invoice's
-- currency, converted with the invoice's month rate. Payments whose invoice is unknown
-- (or in another currency) are not applied; receivables_exceptions reports them.
select
    p.payment_id,
    p.invoice_id,
    p.customer_id,
    p.payment_date,
    p.currency,
    p.amount,
    p.payment_method,
    i.invoice_id is not null and i.currency = p.currency and i.fx_rate is not null as is_applied,
    case
        when i.invoice_id is null then 'unknown_invoice'
        when i.currency <> p.currency then 'currency_mismatch'
        when i.fx_rate is null then 'invoice_missing_fx_rate'
    end as not_applied_reason,
    i.fx_rate as invoice_fx_rate,
    case
        when i.currency = p.currency then p.amount * i.fx_rate
    end as amount_reporting,
    p.source_file,
    p.source_line
from {{ ref('stg_payments') }} as p
left join {{ ref('stg_invoices') }} as i
    on p.invoice_id = i.invoice_id
