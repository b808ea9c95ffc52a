{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_keys('invoice_id', changed_invoice_ids()) }}") }}
-- incremental by invoice_id: only keys whose staged rows changed are rebuilt (macros/incremental.sql)
-- metrics.md "Receivables": what is paid on an invoice is capped at its amount. One row
-- per invoice and month with payments: the capped amount collected so far and the part
-- of it that month added (collected_delta). Payments after end(through_month) never count.
-- The cap: macro capped_collected (in the invoice's currency, then converted).
with payments_by_month as (
    select
        invoice_id,
        cast({{ month_index('payment_date') }} as integer) as pay_idx,
        sum(amount) as paid
    from {{ ref('int_payments_applied') }}
    where
        is_applied and payment_date <= {{ through_month_end() }}
    {{ only_changed_keys('invoice_id', changed_invoice_ids()) }}
    group by invoice_id, pay_idx
),

cumulative as (
    select
        invoice_id,
        pay_idx,
        paid,
        sum(paid) over (partition by invoice_id order by pay_idx rows between unbounded preceding and current row)
            as cum_paid
    from payments_by_month
),

capped as (
    select
        c.invoice_id,
        i.customer_id,
        i.invoice_idx,
        i.due_idx,
        c.pay_idx,
        c.paid,
        c.cum_paid,
        {{ capped_collected('i.amount', 'c.cum_paid', 'i.fx_rate') }} as capped_cum,
        {{ capped_collected('i.amount', 'c.cum_paid - c.paid', 'i.fx_rate') }} as capped_before
    from cumulative as c
    inner join {{ ref('int_invoices_counted') }} as i
        on c.invoice_id = i.invoice_id
)

select
    invoice_id,
    customer_id,
    invoice_idx,
    due_idx,
    pay_idx,
    paid,
    cum_paid,
    capped_cum,
    -- what the month added: the previous step's cum_paid is cum_paid - paid (a running sum), so no second
    -- window over these wide rows is needed (one ran out of memory at L within 5 GB)
    capped_cum - capped_before as collected_delta,
    {{ intermediate_columns([ref('stg_invoices'), ref('stg_payments')]) }}
from capped
