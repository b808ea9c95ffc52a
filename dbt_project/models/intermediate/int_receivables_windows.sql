-- metrics.md "Receivables" over W(M), as running sums of start/stop events: an invoice
-- due in month d counts for M in [d, d + 11]; a capped payment increment made in month p
-- counts for M in [max(d, p), d + 11]. outstanding_end and its aging the same way: each
-- piece of an open invoice (int_invoice_open_pieces) counts in aging bucket k over the
-- months where the piece and the bucket's months overlap. Linear in the number of invoices
-- and payments, never invoice x month.
with collection_events as (
    select
        customer_id,
        due_idx as month_idx,
        amount_reporting as d_billed,
        paid_on_time as d_on_time,
        cast(0 as {{ money_type() }}) as d_collected
    from {{ ref('int_invoice_on_time') }}
    union all
    select
        customer_id,
        due_idx + {{ var('window_months') }} as month_idx,
        -amount_reporting as d_billed,
        -paid_on_time as d_on_time,
        0 as d_collected
    from {{ ref('int_invoice_on_time') }}
    union all
    select
        customer_id,
        greatest(due_idx, pay_idx) as month_idx,
        0 as d_billed,
        0 as d_on_time,
        collected_delta as d_collected
    from {{ ref('int_invoice_payment_steps') }}
    where greatest(due_idx, pay_idx) < due_idx + {{ var('window_months') }}
    union all
    select
        customer_id,
        due_idx + {{ var('window_months') }} as month_idx,
        0 as d_billed,
        0 as d_on_time,
        -collected_delta as d_collected
    from {{ ref('int_invoice_payment_steps') }}
    where greatest(due_idx, pay_idx) < due_idx + {{ var('window_months') }}
),

-- bucket 0 not_due, 1 overdue_1_30, 2 overdue_31_60, 3 overdue_61_90, 4 overdue_90_plus (each
-- from the month in int_invoice_open_pieces, bounds in macro aging_buckets);
-- 2147483647 stands for "open for good"
open_spans as (
    select
        p.customer_id,
        b.bucket,
        p.remaining,
        greatest(
            p.start_idx,
            case b.bucket
                when 0 then p.start_idx
                when 1 then p.overdue_1_30_from_idx
                when 2 then p.overdue_31_60_from_idx
                when 3 then p.overdue_61_90_from_idx
                else p.overdue_90_plus_from_idx
            end
        ) as from_idx,
        least(
            coalesce(p.end_idx, 2147483647),
            case b.bucket
                when 0 then p.overdue_1_30_from_idx
                when 1 then p.overdue_31_60_from_idx
                when 2 then p.overdue_61_90_from_idx
                when 3 then p.overdue_90_plus_from_idx
                else 2147483647
            end
        ) as to_idx
    from {{ ref('int_invoice_open_pieces') }} as p
    cross join (values (0), (1), (2), (3), (4)) as b (bucket)
),

open_events as (
    select
        customer_id,
        bucket,
        from_idx as month_idx,
        remaining as d_remaining,
        1 as d_open
    from open_spans
    where from_idx < to_idx
    union all
    select
        customer_id,
        bucket,
        to_idx as month_idx,
        -remaining as d_remaining,
        -1 as d_open
    from open_spans
    where from_idx < to_idx and to_idx < 2147483647
),

-- each kind of event summed per customer and month on its own columns first: the union
-- below then carries customer x month rows, not one row per event with every column
collection_per_month as (
    select
        customer_id,
        month_idx,
        sum(d_billed) as d_billed,
        sum(d_on_time) as d_on_time,
        sum(d_collected) as d_collected
    from collection_events
    group by customer_id, month_idx
),

open_per_month as (
    select
        customer_id,
        month_idx,
        sum(case when bucket = 0 then d_remaining else 0 end) as d_not_due,
        sum(case when bucket = 1 then d_remaining else 0 end) as d_overdue_1_30,
        sum(case when bucket = 2 then d_remaining else 0 end) as d_overdue_31_60,
        sum(case when bucket = 3 then d_remaining else 0 end) as d_overdue_61_90,
        sum(case when bucket = 4 then d_remaining else 0 end) as d_overdue_90_plus,
        sum(d_open) as d_open
    from open_events
    group by customer_id, month_idx
),

events as (
    select
        customer_id,
        month_idx,
        d_billed,
        d_on_time,
        d_collected,
        0 as d_not_due,
        0 as d_overdue_1_30,
        0 as d_overdue_31_60,
        0 as d_overdue_61_90,
        0 as d_overdue_90_plus,
        0 as d_open
    from collection_per_month
    union all
    select
        customer_id,
        month_idx,
        0 as d_billed,
        0 as d_on_time,
        0 as d_collected,
        d_not_due,
        d_overdue_1_30,
        d_overdue_31_60,
        d_overdue_61_90,
        d_overdue_90_plus,
        d_open
    from open_per_month
),

spine as (
    select
        customer_id,
        month_idx
    from {{ ref('int_customer_months') }}
),

-- the spine's rows carry no change; they make sure every evaluated month gets a row
per_month as (
    select
        customer_id,
        month_idx,
        sum(d_billed) as d_billed,
        sum(d_on_time) as d_on_time,
        sum(d_collected) as d_collected,
        sum(d_not_due) as d_not_due,
        sum(d_overdue_1_30) as d_overdue_1_30,
        sum(d_overdue_31_60) as d_overdue_31_60,
        sum(d_overdue_61_90) as d_overdue_61_90,
        sum(d_overdue_90_plus) as d_overdue_90_plus,
        sum(d_open) as d_open
    from (
        select * from events
        union all
        select
            customer_id,
            month_idx,
            0 as d_billed,
            0 as d_on_time,
            0 as d_collected,
            0 as d_not_due,
            0 as d_overdue_1_30,
            0 as d_overdue_31_60,
            0 as d_overdue_61_90,
            0 as d_overdue_90_plus,
            0 as d_open
        from spine
    ) as u
    group by customer_id, month_idx
),

running as (
    select
        customer_id,
        month_idx,
        sum(d_billed) over to_date as billed_due_12m,
        sum(d_collected) over to_date as collected_12m,
        sum(d_on_time) over to_date as paid_on_time_12m,
        sum(d_not_due) over to_date as aging_not_due,
        sum(d_overdue_1_30) over to_date as aging_overdue_1_30,
        sum(d_overdue_31_60) over to_date as aging_overdue_31_60,
        sum(d_overdue_61_90) over to_date as aging_overdue_61_90,
        sum(d_overdue_90_plus) over to_date as aging_overdue_90_plus,
        sum(d_open) over to_date as open_invoices
    from per_month
    window to_date as ({{ window_to_date() }})
),

-- sources.md: without an invoice feed nothing is known of billing; without a payment feed, nothing of
-- what was collected or is outstanding (0 would read as "nothing collected": e = 0.70 for everyone)
feeds as (
    select
        {{ feed_delivered(ref('stg_invoices')) }} as invoices,
        {{ feed_delivered(ref('stg_invoices')) }} and {{ feed_delivered(ref('stg_payments')) }} as payments
)

select
    s.customer_id,
    s.month_idx,
    {{ if_delivered('f.invoices', 'cast(r.billed_due_12m as ' ~ money_type() ~ ')') }} as billed_due_12m,
    {{ if_delivered('f.payments', 'cast(r.collected_12m as ' ~ money_type() ~ ')') }} as collected_12m,
    {{ if_delivered('f.payments', 'cast(r.paid_on_time_12m as ' ~ money_type() ~ ')') }} as paid_on_time_12m,
    {{ if_delivered('f.payments', safe_ratio('r.collected_12m', 'r.billed_due_12m')) }} as collection_rate_12m,
    {{ if_delivered('f.payments', safe_ratio('r.paid_on_time_12m', 'r.billed_due_12m')) }} as on_time_rate_12m,
    {{ if_delivered('f.payments', 'cast(r.aging_not_due + r.aging_overdue_1_30 + r.aging_overdue_31_60
        + r.aging_overdue_61_90 + r.aging_overdue_90_plus as ' ~ money_type() ~ ')') }} as outstanding_end,
    {{ if_delivered('f.payments', 'cast(r.aging_not_due as ' ~ money_type() ~ ')') }} as aging_not_due,
    {{ if_delivered('f.payments', 'cast(r.aging_overdue_1_30 as ' ~ money_type() ~ ')') }} as aging_overdue_1_30,
    {{ if_delivered('f.payments', 'cast(r.aging_overdue_31_60 as ' ~ money_type() ~ ')') }} as aging_overdue_31_60,
    {{ if_delivered('f.payments', 'cast(r.aging_overdue_61_90 as ' ~ money_type() ~ ')') }} as aging_overdue_61_90,
    {{ if_delivered('f.payments', 'cast(r.aging_overdue_90_plus as ' ~ money_type() ~ ')') }} as aging_overdue_90_plus,
    {{ if_delivered('f.payments', 'cast(r.open_invoices as bigint)') }} as open_invoices
from spine as s
inner join running as r
    on s.customer_id = r.customer_id and s.month_idx = r.month_idx
cross join feeds as f
