-- Payments with both conversions: at the invoice's rate (what receivables measures use)
-- and at the payment month's own rate (cash reporting). A payment in another currency than its
-- known invoice is quarantined (sources.md: currency_mismatch), so it is no fact: it is listed in
-- quarantine.payments and receivables_exceptions, and comes here once the rows agree. A payment
-- of an unknown invoice is an orphan, kept (is_applied false) until the invoice arrives.
select
    p.payment_id,
    p.invoice_id,
    p.customer_id,
    p.payment_date,
    p.currency,
    p.amount,
    p.payment_method,
    p.is_applied,
    p.not_applied_reason,
    p.invoice_fx_rate,
    p.amount_reporting,
    {{ to_reporting('p.amount', fx_rate_for('p.currency', 'fx.rate_to_reporting')) }}
        as amount_reporting_at_payment_month,
    p.source_file,
    p.source_line
from {{ ref('int_payments_applied') }} as p
left join {{ ref('stg_fx_rates') }} as fx
    on
        p.currency = fx.currency
        and cast(date_trunc('month', p.payment_date) as date) = fx.month_start
where p.not_applied_reason is distinct from 'currency_mismatch'
