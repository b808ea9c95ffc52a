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
{#- orphans of every feed that names a customer: kept, listed here, joined once the customer arrives #}
{%- set orphans = [
    {'type': 'orphan_order', 'feed': 'orders', 'model': 'stg_orders', 'record_id': 'order_id',
     'invoice_id': 'cast(null as varchar)', 'currency': 'currency', 'amount': 'net_amount'},
    {'type': 'orphan_invoice', 'feed': 'invoices', 'model': 'stg_invoices', 'record_id': 'invoice_id',
     'invoice_id': 'invoice_id', 'currency': 'currency', 'amount': 'amount'},
    {'type': 'orphan_survey_response', 'feed': 'survey_responses', 'model': 'stg_survey_responses',
     'record_id': 'response_id', 'invoice_id': 'cast(null as varchar)', 'currency': 'cast(null as varchar)',
     'amount': 'cast(null as decimal(38, 8))'},
    {'type': 'orphan_interaction', 'feed': 'interactions', 'model': 'stg_interactions',
     'record_id': 'interaction_id', 'invoice_id': 'cast(null as varchar)', 'currency': 'cast(null as varchar)',
     'amount': 'cast(null as decimal(38, 8))'},
    {'type': 'orphan_override', 'feed': 'tier_overrides', 'model': 'stg_tier_overrides',
     'record_id': "customer_id || ' ' || " ~ month_label('eval_month'), 'invoice_id': 'cast(null as varchar)',
     'currency': 'cast(null as varchar)', 'amount': 'cast(null as decimal(38, 8))'},
] %}
{%- for o in orphans %}

    select
        '{{ o.type }}' as exception_type,
        '{{ o.feed }}' as feed,
        {{ o.record_id }} as record_id,
        customer_id,
        {{ o.invoice_id }},
        {{ o.currency }},
        {{ o.amount }},
        'customer not in the master' as detail,
        source_file,
        source_line
    from {{ ref(o.model) }} as r
    where
        not exists (
            select 1 from customers as c
            where c.customer_id = r.customer_id
        )

    union all
{%- endfor %}

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
