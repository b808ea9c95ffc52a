-- What finance must look at: payments not applied to a known invoice, overpayments (the
-- excess over the invoice amount is not counted as collected), orphans (rows whose
-- customer is not in the master yet: kept, and joined once it arrives; sources.md asks
-- for every orphan to be reported, survey answers, interactions and overrides too), and
-- rows held back for a missing fx rate.
with payments as (
    select * from {{ ref('int_payments_applied') }}
),

customers as (
    select customer_id from {{ ref('stg_customers') }}
),

-- the invoice's own source row, and the payments that paid it in the detail (outputs.md: "with the
-- source rows")
overpaid as (
    select
        i.invoice_id,
        i.customer_id,
        i.currency,
        i.amount,
        i.source_file,
        i.source_line,
        sum(p.amount) as paid,
        string_agg(p.payment_id, ', ' order by {{ byte_order('p.payment_id') }}) as payment_ids
    from {{ ref('stg_invoices') }} as i
    inner join payments as p
        on i.invoice_id = p.invoice_id and p.is_applied
    group by i.invoice_id, i.customer_id, i.currency, i.amount, i.source_file, i.source_line
    having sum(p.amount) > i.amount
)

select
    'unapplied_payment' as exception_type,
    'payments' as feed,
    payment_id as record_id,
    customer_id,
    invoice_id,
    currency,
    amount,
    not_applied_reason as detail,
    source_file,
    source_line
from payments
where not is_applied

union all

select
    'overpayment' as exception_type,
    'invoices' as feed,
    invoice_id as record_id,
    customer_id,
    invoice_id,
    currency,
    paid - amount as amount,
    'paid ' || cast(paid as varchar) || ' on an invoice of ' || cast(amount as varchar)
    || ' (payments ' || payment_ids || ')' as detail,
    source_file,
    source_line
from overpaid

union all

select
    'orphan_order' as exception_type,
    'orders' as feed,
    o.order_id as record_id,
    o.customer_id,
    cast(null as varchar) as invoice_id,
    o.currency,
    o.net_amount as amount,
    'customer not in the master' as detail,
    o.source_file,
    o.source_line
from {{ ref('stg_orders') }} as o
where
    not exists (
        select 1 from customers as c
        where c.customer_id = o.customer_id
    )

union all

select
    'orphan_invoice' as exception_type,
    'invoices' as feed,
    i.invoice_id as record_id,
    i.customer_id,
    i.invoice_id,
    i.currency,
    i.amount,
    'customer not in the master' as detail,
    i.source_file,
    i.source_line
from {{ ref('stg_invoices') }} as i
where
    not exists (
        select 1 from customers as c
        where c.customer_id = i.customer_id
    )

union all

select
    'missing_fx_rate' as exception_type,
    'orders' as feed,
    order_id as record_id,
    customer_id,
    cast(null as varchar) as invoice_id,
    currency,
    net_amount as amount,
    'no ' || currency || ' rate for ' || {{ month_label('order_month') }} as detail,
    source_file,
    source_line
from {{ ref('stg_orders') }}
where fx_rate is null

union all

select
    'missing_fx_rate' as exception_type,
    'invoices' as feed,
    invoice_id as record_id,
    customer_id,
    invoice_id,
    currency,
    amount,
    'no ' || currency || ' rate for ' || {{ month_label("cast(date_trunc('month', invoice_date) as date)") }}
        as detail,
    source_file,
    source_line
from {{ ref('stg_invoices') }}
where fx_rate is null

union all

select
    'orphan_survey_response' as exception_type,
    'survey_responses' as feed,
    r.response_id as record_id,
    r.customer_id,
    cast(null as varchar) as invoice_id,
    cast(null as varchar) as currency,
    cast(null as decimal(38, 8)) as amount,
    'customer not in the master' as detail,
    r.source_file,
    r.source_line
from {{ ref('stg_survey_responses') }} as r
where
    not exists (
        select 1 from customers as c
        where c.customer_id = r.customer_id
    )

union all

select
    'orphan_interaction' as exception_type,
    'interactions' as feed,
    x.interaction_id as record_id,
    x.customer_id,
    cast(null as varchar) as invoice_id,
    cast(null as varchar) as currency,
    cast(null as decimal(38, 8)) as amount,
    'customer not in the master' as detail,
    x.source_file,
    x.source_line
from {{ ref('stg_interactions') }} as x
where
    not exists (
        select 1 from customers as c
        where c.customer_id = x.customer_id
    )

union all

-- an override of a customer not in the master sets no tier until the customer arrives
select
    'orphan_override' as exception_type,
    'tier_overrides' as feed,
    o.customer_id || ' ' || {{ month_label('o.eval_month') }} as record_id,
    o.customer_id,
    cast(null as varchar) as invoice_id,
    cast(null as varchar) as currency,
    cast(null as decimal(38, 8)) as amount,
    'customer not in the master' as detail,
    o.source_file,
    o.source_line
from {{ ref('stg_tier_overrides') }} as o
where
    not exists (
        select 1 from customers as c
        where c.customer_id = o.customer_id
    )
