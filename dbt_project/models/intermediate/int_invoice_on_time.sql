{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_keys('invoice_id', changed_invoice_ids()) }}") }}
-- incremental by invoice_id: only keys whose staged rows changed are rebuilt (macros/incremental.sql)
-- metrics.md on_time_rate: per invoice, min(amount, payments dated on or before its due_date)
-- (macro capped_collected).
select
    i.invoice_id,
    i.customer_id,
    i.due_idx,
    i.amount_reporting,
    {{ capped_collected('i.amount', 'coalesce(sum(p.amount), 0)', 'i.fx_rate') }} as paid_on_time,
    {{ intermediate_columns([ref('stg_invoices'), ref('stg_payments')]) }}
from {{ ref('int_invoices_counted') }} as i
left join {{ ref('int_payments_applied') }} as p
    on
        i.invoice_id = p.invoice_id
        and p.is_applied
        and i.due_date >= p.payment_date
where true
{{ only_changed_keys('invoice_id', changed_invoice_ids(), 'i') }}
group by i.invoice_id, i.customer_id, i.due_idx, i.amount_reporting, i.amount, i.fx_rate
