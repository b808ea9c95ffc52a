{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_keys('invoice_id', changed_invoice_ids()) }}") }}
-- incremental by invoice_id: only keys whose staged rows changed are rebuilt (macros/incremental.sql)
-- metrics.md outstanding_end and aging, as pieces instead of invoice x month rows: what is
-- left to pay on an invoice is a step function that changes only in payment months. One
-- row per invoice and step while something is left, holding from start_idx up to (not
-- including) end_idx (null: still open), with the months its days past due at end(M)
-- (end(M) - due_date) enter each aging bucket: end(M) >= due_date + k exactly when
-- M >= the month of due_date + k.
with changes as (
    select
        invoice_id,
        invoice_idx as start_idx,
        cast(0 as {{ money_type() }}) as capped_cum
    from {{ ref('int_invoices_counted') }}
    where true
    {{ only_changed_keys('invoice_id', changed_invoice_ids()) }}
    union all
    -- a payment before the invoice month already counts in the invoice month
    select
        invoice_id,
        greatest(pay_idx, invoice_idx) as start_idx,
        capped_cum
    from {{ ref('int_invoice_payment_steps') }}
    where true
    {{ only_changed_keys('invoice_id', changed_invoice_ids()) }}
),

steps as (
    select
        invoice_id,
        start_idx,
        max(capped_cum) as capped_cum
    from changes
    group by invoice_id, start_idx
),

-- the window sees the narrow steps only: over the joined wide rows it could not spill enough and
-- ran out of memory at L within 5 GB (docs/benchmarks.md, session 8)
bounds as (
    select
        invoice_id,
        start_idx,
        capped_cum,
        lead(start_idx) over (partition by invoice_id order by start_idx) as end_idx
    from steps
),

pieces as (
    select
        s.invoice_id,
        i.customer_id,
        i.due_date,
        s.start_idx,
        s.end_idx,
        i.amount_reporting - s.capped_cum as remaining
    from bounds as s
    inner join {{ ref('int_invoices_counted') }} as i
        on s.invoice_id = i.invoice_id
)

select
    invoice_id,
    customer_id,
    due_date,
    start_idx,
    end_idx,
    remaining,
    {{ aging_from_indexes('due_date') }},
    {{ intermediate_columns([ref('stg_invoices'), ref('stg_payments')]) }}
from pieces
where remaining > 0
