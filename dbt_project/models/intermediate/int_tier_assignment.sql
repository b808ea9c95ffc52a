-- metrics.md "Assigned tier, with a grace period against flapping" and manual overrides.
-- The rule is sequential per customer, so it runs as a recursive query that advances all
-- customers one month per step (set-based: 36 steps for three years, whatever the count
-- of customers). Tiers compare as letters: 'A' < 'B' < 'C' means better (the same order in
-- every collation, so no byte_order is needed).
with recursive months as (
    select
        r.customer_id,
        r.month_idx,
        r.raw_tier,
        o.tier as override_tier,
        row_number() over (partition by r.customer_id order by r.month_idx) as seq
    from {{ ref('int_raw_tiers') }} as r
    left join {{ ref('stg_tier_overrides') }} as o
        on r.customer_id = o.customer_id and r.eval_month = o.eval_month
),

assigned as (
    select
        customer_id,
        month_idx,
        seq,
        raw_tier,
        coalesce(override_tier, raw_tier) as tier,
        cast(null as {{ dbt.type_string() }}) as previous_tier,
        case when override_tier is not null then 'override' else 'new' end as tier_change,
        0 as months_below,
        -- state handed to the next month: length and best raw tier of the current run below
        0 as run_below,
        cast(null as {{ dbt.type_string() }}) as run_best
    from months
    where seq = 1

    union all

    select
        m.customer_id,
        m.month_idx,
        m.seq,
        m.raw_tier,
        case
            when m.override_tier is not null then m.override_tier
            when m.raw_tier <= a.tier then m.raw_tier
            when a.run_below + 1 > {{ var('grace_months') }} then least(coalesce(a.run_best, m.raw_tier), m.raw_tier)
            else a.tier
        end as tier,
        a.tier as previous_tier,
        case
            when m.override_tier is not null then 'override'
            when m.raw_tier < a.tier then 'promoted'
            when m.raw_tier = a.tier then 'unchanged'
            when a.run_below + 1 > {{ var('grace_months') }} then 'demoted'
            else 'held'
        end as tier_change,
        case
            when m.override_tier is not null or m.raw_tier <= a.tier then 0
            else a.run_below + 1
        end as months_below,
        -- an override, a month not below, or the demotion itself ends the run
        case
            when m.override_tier is not null or m.raw_tier <= a.tier then 0
            when a.run_below + 1 > {{ var('grace_months') }} then 0
            else a.run_below + 1
        end as run_below,
        case
            when m.override_tier is not null or m.raw_tier <= a.tier then null
            when a.run_below + 1 > {{ var('grace_months') }} then null
            else least(coalesce(a.run_best, m.raw_tier), m.raw_tier)
        end as run_best
    from months as m
    inner join assigned as a
        on m.customer_id = a.customer_id and m.seq = a.seq + 1
)

select
    customer_id,
    month_idx,
    raw_tier,
    tier,
    previous_tier,
    tier_change,
    months_below
from assigned
