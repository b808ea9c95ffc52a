{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_keys('invoice_id', restaged_keys(ref('stg_invoices'), 'invoice_id')) }}") }}
-- incremental by invoice_id: only keys whose staged rows changed are rebuilt (macros/incremental.sql)
-- Invoices that count for receivables: converted (rate known) and dated up to end(through_month).
select
    invoice_id,
    customer_id,
    invoice_date,
    due_date,
    cast({{ month_index('invoice_date') }} as integer) as invoice_idx,
    cast({{ month_index('due_date') }} as integer) as due_idx,
    fx_rate,
    amount,
    amount_reporting,
    {{ intermediate_columns([ref('stg_invoices')]) }}
from {{ ref('stg_invoices') }}
where
    fx_rate is not null and invoice_date <= {{ through_month_end() }}
{{ only_changed_keys('invoice_id', restaged_keys(ref('stg_invoices'), 'invoice_id')) }}
