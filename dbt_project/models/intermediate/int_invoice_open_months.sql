-- metrics.md outstanding_end and aging: each invoice, for every evaluation month from its
-- invoice month while something is left to pay, with the amount left at end(M) and its
-- days past due. The remaining amount is a step function that changes in payment months.
with changes as (
    select
        invoice_id,
        invoice_idx as start_idx,
        cast(0 as {{ money_type() }}) as capped_cum
    from {{ ref('int_invoices_counted') }}
    union all
    -- a payment before the invoice month already counts in the invoice month
    select
        invoice_id,
        greatest(pay_idx, invoice_idx) as start_idx,
        capped_cum
    from {{ ref('int_invoice_payment_steps') }}
),

steps as (
    select
        invoice_id,
        start_idx,
        max(capped_cum) as capped_cum
    from changes
    group by invoice_id, start_idx
),

pieces as (
    select
        s.invoice_id,
        i.customer_id,
        i.due_date,
        s.start_idx,
        lead(s.start_idx) over (partition by s.invoice_id order by s.start_idx) as end_idx,
        i.amount_reporting - s.capped_cum as remaining
    from steps as s
    inner join {{ ref('int_invoices_counted') }} as i
        on s.invoice_id = i.invoice_id
)

select
    p.invoice_id,
    p.customer_id,
    m.month_idx,
    m.month_end,
    p.due_date,
    p.remaining,
    cast(m.month_end - p.due_date as integer) as days_past_due
from pieces as p
inner join {{ ref('int_eval_months') }} as m
    on
        p.start_idx <= m.month_idx
        and (p.end_idx is null or p.end_idx > m.month_idx)
where p.remaining > 0
