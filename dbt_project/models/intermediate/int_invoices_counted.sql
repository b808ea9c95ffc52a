-- Invoices that count for receivables: converted (rate known) and dated up to end(through_month).
select
    invoice_id,
    customer_id,
    invoice_date,
    due_date,
    cast({{ month_index('invoice_date') }} as integer) as invoice_idx,
    cast({{ month_index('due_date') }} as integer) as due_idx,
    fx_rate,
    amount_reporting
from {{ ref('stg_invoices') }}
where fx_rate is not null and invoice_date <= {{ through_month_end() }}
