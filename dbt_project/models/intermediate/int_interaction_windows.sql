-- docs/programme.md "Measures": complaints, visits and escalations per evaluated customer and
-- month M, as of end(M) in the business time zone (interactions count on the business date of
-- opened_at; a complaint is open at the cut-off until the business date of its closed_at).
-- The measures are null for months the feed does not cover: before the month of the first
-- interaction of any customer (always, when the feed was never delivered); the flags are then false.
with spine as (
    select
        customer_id,
        month_idx,
        visits_per_year
    from {{ ref('int_customer_packages') }}
),

interactions as (
    select
        customer_id,
        kind,
        opened_on,
        closed_on,
        cast({{ month_index('opened_on') }} as integer) as opened_idx,
        case
            when closed_on <= {{ through_month_end() }} then cast({{ month_index('closed_on') }} as integer)
        end as closed_idx,
        {{ epoch_microseconds('closed_at_utc') }} - {{ epoch_microseconds('opened_at_utc') }} as microseconds_to_close
    from {{ ref('stg_interactions') }}
    where not closed_before_opened and opened_on <= {{ through_month_end() }}
),

coverage as (
    select min(opened_idx) as first_idx from interactions
),

events as (
    select
        customer_id,
        opened_idx as month_idx,
        case when kind = 'complaint' then 1 else 0 end as complaints,
        case when kind = 'visit' then 1 else 0 end as visits,
        case when kind = 'escalation' then 1 else 0 end as escalations,
        -- an open complaint counts from the month it was opened ...
        case when kind = 'complaint' then 1 else 0 end as open_change
    from interactions
    union all
    -- ... until the month it was closed in
    select
        customer_id,
        closed_idx as month_idx,
        0 as complaints,
        0 as visits,
        0 as escalations,
        -1 as open_change
    from interactions
    where kind = 'complaint' and closed_idx is not null
    union all
    select
        customer_id,
        month_idx,
        0 as complaints,
        0 as visits,
        0 as escalations,
        0 as open_change
    from spine
),

per_month as (
    select
        customer_id,
        month_idx,
        sum(complaints) as complaints,
        sum(visits) as visits,
        sum(escalations) as escalations,
        sum(open_change) as open_change
    from events
    group by customer_id, month_idx
),

windowed as (
    select
        customer_id,
        month_idx,
        sum(complaints) over w as complaints_12m,
        sum(complaints) over recent as complaints_recent,
        coalesce(sum(complaints) over prior, 0) as complaints_prior,
        sum(escalations) over w as escalations_12m,
        sum(visits) over w as visits_12m,
        sum(open_change) over to_date as open_complaints
    from per_month
    window
        w as ({{ window_w() }}),
        recent as ({{ window_complaints_recent() }}),
        prior as ({{ window_complaints_prior() }}),
        to_date as ({{ window_to_date() }})
),

-- median time to close of the complaints closed in W(M) (closed by the cut-off)
closed as (
    select
        s.customer_id,
        s.month_idx,
        count(*) as complaints_closed_12m,
        percentile_cont(0.5) within group (order by i.microseconds_to_close) as median_microseconds_to_close
    from spine as s
    inner join interactions as i
        on
            s.customer_id = i.customer_id
            and i.kind = 'complaint'
            and i.closed_idx between s.month_idx - {{ var('window_months') - 1 }} and s.month_idx
    group by s.customer_id, s.month_idx
),

-- visits owed over W(M): each month of W(M) the customer was evaluated in owes 1/12 of its
-- package's visits_per_year; whole visits only (rounded down)
owed as (
    select
        customer_id,
        month_idx,
        cast({{ int_div('sum(visits_per_year) over (' ~ window_w() ~ ')', 12) }} as bigint) as visits_expected_12m
    from spine
),

measures as (
    select
        s.customer_id,
        s.month_idx,
        coalesce(s.month_idx >= cov.first_idx, false) as interactions_covered,
        cast(w.complaints_12m as bigint) as complaints_12m,
        cast(w.complaints_recent as bigint) as complaints_recent,
        cast(w.complaints_prior as bigint) as complaints_prior,
        cast(w.open_complaints as bigint) as open_complaints,
        cast(coalesce(c.complaints_closed_12m, 0) as bigint) as complaints_closed_12m,
        c.median_microseconds_to_close / cast(3600000000 as {{ double_type() }}) as median_hours_to_close,
        cast(w.escalations_12m as bigint) as escalations_12m,
        cast(w.visits_12m as bigint) as visits_12m,
        s.visits_per_year,
        o.visits_expected_12m
    from spine as s
    cross join coverage as cov
    inner join windowed as w
        on s.customer_id = w.customer_id and s.month_idx = w.month_idx
    inner join owed as o
        on s.customer_id = o.customer_id and s.month_idx = o.month_idx
    left join closed as c
        on s.customer_id = c.customer_id and s.month_idx = c.month_idx
)

select
    customer_id,
    month_idx,
    interactions_covered,
    case when interactions_covered then complaints_12m end as complaints_12m,
    case when interactions_covered then complaints_recent end as complaints_recent,
    case when interactions_covered then complaints_prior end as complaints_prior,
    case when interactions_covered then open_complaints end as open_complaints,
    case when interactions_covered then complaints_closed_12m end as complaints_closed_12m,
    case when interactions_covered then median_hours_to_close end as median_hours_to_close,
    case when interactions_covered then escalations_12m end as escalations_12m,
    case when interactions_covered then visits_12m end as visits_12m,
    visits_per_year,
    visits_expected_12m,
    coalesce(interactions_covered and {{ complaints_rising('complaints_recent', 'complaints_prior') }}, false)
        as complaints_rising,
    coalesce(interactions_covered and {{ under_visited('visits_12m', 'visits_expected_12m') }}, false)
        as under_visited
from measures
