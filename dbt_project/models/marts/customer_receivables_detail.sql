-- Finance drill-down: the invoices behind each collection rate. One row per evaluated
-- customer, evaluation month M and invoice due in W(M), with what was collected on it by
-- end(M) (capped at its amount) and on time; its sums are billed_due_12m, collected_12m and
-- paid_on_time_12m of customer_receivables_monthly. It covers the last
-- `receivables_detail_months` evaluation months (null: all): one row per invoice and month
-- is by far the largest table of the warehouse (docs/benchmarks.md).

-- each invoice is in W(M) for the window_months months from its due month on: its rows are
-- made by adding those offsets to due_idx and matched to the evaluated customer-months by
-- equality (a range join on customer_id alone pairs every invoice with every month first)
with offsets as (
    select o.k
    from (
        values
        {%- for k in range(var('window_months') | int) %}
            ({{ k }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as o (k)
),

invoice_months as (
    select
        i.invoice_id,
        i.customer_id,
        i.invoice_date,
        i.due_date,
        i.amount_reporting,
        o.paid_on_time,
        i.due_idx + f.k as month_idx
    from {{ ref('int_invoices_counted') }} as i
    inner join {{ ref('int_invoice_on_time') }} as o
        on i.invoice_id = o.invoice_id
    cross join offsets as f
    where
        i.due_idx + f.k <= {{ through_month_index() }}
        {%- if var('receivables_detail_months') is not none %}
            and i.due_idx + f.k > {{ through_month_index() }} - {{ var('receivables_detail_months') | int }}
            -- the same bound on the invoice alone, so it is applied before the offsets multiply it
            and i.due_idx > {{ through_month_index() }} - {{ var('receivables_detail_months') | int }}
            - {{ var('window_months') | int }}
        {%- endif %}
),

due_in_window as (
    select
        m.customer_id,
        m.month_idx,
        m.eval_month,
        m.month_end,
        i.invoice_id,
        i.invoice_date,
        i.due_date,
        i.amount_reporting,
        i.paid_on_time
    from invoice_months as i
    inner join {{ ref('int_customer_months') }} as m
        on i.customer_id = m.customer_id and i.month_idx = m.month_idx
),

-- capped_cum is cumulative, so what was collected by end(M) is the capped_cum of the
-- invoice's last payment month up to M: each step holds from its month until the next
-- step's (one match per row: a hash join on invoice_id; an OR in this condition makes DuckDB loop)
steps as (
    select
        invoice_id,
        pay_idx,
        capped_cum,
        lead(pay_idx) over (partition by invoice_id order by pay_idx) as next_pay_idx
    from {{ ref('int_invoice_payment_steps') }}
),

-- sources.md: without a payment feed, what was collected is not known (null, as in
-- customer_receivables_monthly)
feeds as (
    select {{ feed_delivered(ref('stg_payments')) }} as payments
)

select
    d.customer_id,
    {{ month_label('d.eval_month') }} as eval_month,
    d.invoice_id,
    d.invoice_date,
    d.due_date,
    cast(d.amount_reporting as {{ money_type() }}) as amount,
    {{ if_delivered('f.payments', 'cast(coalesce(c.capped_cum, 0) as ' ~ money_type() ~ ')') }} as collected_by_cutoff,
    {{ if_delivered('f.payments', 'cast(d.paid_on_time as ' ~ money_type() ~ ')') }} as paid_on_time,
    {{ if_delivered('f.payments', 'cast(d.amount_reporting - coalesce(c.capped_cum, 0) as '
        ~ money_type() ~ ')') }} as outstanding_at_cutoff,
    cast(d.month_end - d.due_date as integer) as days_past_due,
    case
        when not f.payments then null
        when d.amount_reporting - coalesce(c.capped_cum, 0) = 0 then 'paid'
        else {{ aging_bucket('d.month_end - d.due_date') }}
    end as aging_bucket
from due_in_window as d
cross join feeds as f
left join steps as c
    on
        d.invoice_id = c.invoice_id
        and d.month_idx >= c.pay_idx
        and d.month_idx < coalesce(c.next_pay_idx, 2147483647)  -- the last step holds for good
