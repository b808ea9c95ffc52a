-- metrics.md "Satisfaction and loyalty": survey counts over W(M) by the local date of
-- submitted_at, NPS and CSAT from them, and the loyalty score's three parts.
-- Quotients are in double precision (to_double): published values are snapped from them.
with spine as (
    select
        customer_id,
        month_idx
    from {{ ref('int_customer_months') }}
),

activity as (
    select
        customer_id,
        cast({{ month_index('submitted_on') }} as integer) as month_idx,
        count(*) as responses,
        count(nps_score) as nps_responses,
        sum(case when nps_score >= 9 then 1 else 0 end) as promoters,
        sum(case when nps_score <= 6 then 1 else 0 end) as detractors,
        count(satisfaction) as satisfaction_responses,
        coalesce(sum(satisfaction), 0) as satisfaction_sum
    from {{ ref('stg_survey_responses') }}
    where submitted_on <= {{ through_month_end() }}
    group by customer_id, month_idx
),

per_month as (
    select
        customer_id,
        month_idx,
        sum(responses) as responses,
        sum(nps_responses) as nps_responses,
        sum(promoters) as promoters,
        sum(detractors) as detractors,
        sum(satisfaction_responses) as satisfaction_responses,
        sum(satisfaction_sum) as satisfaction_sum
    from (
        select * from activity
        union all
        select
            customer_id,
            month_idx,
            0 as responses,
            0 as nps_responses,
            0 as promoters,
            0 as detractors,
            0 as satisfaction_responses,
            0 as satisfaction_sum
        from spine
    ) as u
    group by customer_id, month_idx
),

windowed as (
    select
        customer_id,
        month_idx,
        sum(responses) over w as responses_12m,
        sum(nps_responses) over w as nps_responses_12m,
        sum(promoters) over w as promoters_12m,
        sum(detractors) over w as detractors_12m,
        sum(satisfaction_responses) over w as satisfaction_responses_12m,
        sum(satisfaction_sum) over w as satisfaction_sum_12m
    from per_month
    window w as ({{ window_w() }})
),

-- sources.md: a company without a survey tool has no survey feed; its counts are null, not 0
feeds as (
    select {{ feed_delivered(ref('stg_survey_responses')) }} as surveys
),

measures as (
    select
        s.customer_id,
        s.month_idx,
        {{ if_delivered('f.surveys', 'cast(w.responses_12m as bigint)') }} as responses_12m,
        {{ if_delivered('f.surveys', 'cast(w.nps_responses_12m as bigint)') }} as nps_responses_12m,
        {{ if_delivered('f.surveys', 'cast(w.promoters_12m as bigint)') }} as promoters_12m,
        {{ if_delivered('f.surveys', 'cast(w.detractors_12m as bigint)') }} as detractors_12m,
        case
            when w.nps_responses_12m > 0
                then
                    {{ to_double('100 * (w.promoters_12m - w.detractors_12m)') }}
                    / {{ to_double('w.nps_responses_12m') }}
        end as nps_12m,
        case
            when w.satisfaction_responses_12m > 0
                then {{ to_double('w.satisfaction_sum_12m') }} / {{ to_double('w.satisfaction_responses_12m') }}
        end as csat_12m,
        sales.active_months_12m,
        sales.tenure_months
    from spine as s
    inner join windowed as w
        on s.customer_id = w.customer_id and s.month_idx = w.month_idx
    cross join feeds as f
    inner join {{ ref('int_sales_windows') }} as sales
        on s.customer_id = sales.customer_id and s.month_idx = sales.month_idx
),

parts as (
    select
        *,
        {{ to_double('active_months_12m') }} / {{ var('window_months') }} as loyalty_frequency,
        {{ to_double('least(tenure_months, ' ~ var('loyalty_tenure_cap_months') ~ ')') }}
        / {{ var('loyalty_tenure_cap_months') }} as loyalty_tenure,
        case
            when nps_12m is not null then (nps_12m + 100) / 200
            when csat_12m is not null then (csat_12m - 1) / 4
            else 0.5
        end as loyalty_satisfaction
    from measures
)

select
    *,
    100 * (
        {{ var('loyalty_weight_frequency') }} * loyalty_frequency
        + {{ var('loyalty_weight_tenure') }} * loyalty_tenure
        + {{ var('loyalty_weight_satisfaction') }} * loyalty_satisfaction
    ) as loyalty_score_unrounded
from parts
