-- metrics.md "Receivables" over W(M), as running sums of start/stop events: an invoice
-- due in month d counts for M in [d, d + 11]; a capped payment increment made in month p
-- counts for M in [max(d, p), d + 11]. Linear in the number of invoices and payments.
with events as (
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

spine as (
    select
        customer_id,
        month_idx
    from {{ ref('int_customer_months') }}
),

per_month as (
    select
        customer_id,
        month_idx,
        sum(d_billed) as d_billed,
        sum(d_on_time) as d_on_time,
        sum(d_collected) as d_collected,
        max(is_spine) as is_spine
    from (
        select
            customer_id,
            month_idx,
            d_billed,
            d_on_time,
            d_collected,
            0 as is_spine
        from events
        union all
        select
            customer_id,
            month_idx,
            0 as d_billed,
            0 as d_on_time,
            0 as d_collected,
            1 as is_spine
        from spine
    ) as u
    group by customer_id, month_idx
),

running as (
    select
        customer_id,
        month_idx,
        is_spine,
        sum(d_billed) over to_date as billed_due_12m,
        sum(d_collected) over to_date as collected_12m,
        sum(d_on_time) over to_date as paid_on_time_12m
    from per_month
    window to_date as ({{ window_to_date() }})
),

open_items as (
    select
        customer_id,
        month_idx,
        sum(remaining) as outstanding_end,
        sum(case when days_past_due <= 0 then remaining else 0 end) as aging_not_due,
        sum(case when days_past_due between 1 and 30 then remaining else 0 end) as aging_overdue_1_30,
        sum(case when days_past_due between 31 and 60 then remaining else 0 end) as aging_overdue_31_60,
        sum(case when days_past_due between 61 and 90 then remaining else 0 end) as aging_overdue_61_90,
        sum(case when days_past_due > 90 then remaining else 0 end) as aging_overdue_90_plus,
        count(*) as open_invoices
    from {{ ref('int_invoice_open_months') }}
    group by customer_id, month_idx
)

select
    s.customer_id,
    s.month_idx,
    cast(r.billed_due_12m as {{ money_type() }}) as billed_due_12m,
    cast(r.collected_12m as {{ money_type() }}) as collected_12m,
    cast(r.paid_on_time_12m as {{ money_type() }}) as paid_on_time_12m,
    {{ safe_ratio('r.collected_12m', 'r.billed_due_12m') }} as collection_rate_12m,
    {{ safe_ratio('r.paid_on_time_12m', 'r.billed_due_12m') }} as on_time_rate_12m,
    cast(coalesce(o.outstanding_end, 0) as {{ money_type() }}) as outstanding_end,
    cast(coalesce(o.aging_not_due, 0) as {{ money_type() }}) as aging_not_due,
    cast(coalesce(o.aging_overdue_1_30, 0) as {{ money_type() }}) as aging_overdue_1_30,
    cast(coalesce(o.aging_overdue_31_60, 0) as {{ money_type() }}) as aging_overdue_31_60,
    cast(coalesce(o.aging_overdue_61_90, 0) as {{ money_type() }}) as aging_overdue_61_90,
    cast(coalesce(o.aging_overdue_90_plus, 0) as {{ money_type() }}) as aging_overdue_90_plus,
    cast(coalesce(o.open_invoices, 0) as bigint) as open_invoices
from spine as s
inner join running as r
    on s.customer_id = r.customer_id and s.month_idx = r.month_idx
left join open_items as o
    on s.customer_id = o.customer_id and s.month_idx = o.month_idx
