-- metrics.md "Raw tier": in each month the ranked customers (value_score > 0) hold ranks 1, 2, ...
-- with no gap or shared rank, value_score never rises and share_before never falls down the ranks, and
-- only they are ranked. Rows breaking this fail the build, so nothing is published.
with ranked as (
    select
        customer_id,
        eval_month,
        value_score,
        value_rank,
        share_before,
        row_number() over (partition by eval_month order by value_rank) as expected_rank,
        lag(value_score) over (partition by eval_month order by value_rank) as score_above,
        lag(share_before) over (partition by eval_month order by value_rank) as share_above
    from {{ ref('customer_tier_monthly') }}
    where value_rank is not null
)

select
    customer_id,
    eval_month,
    'rank' as broken
from ranked
where
    value_rank != expected_rank
    or value_score <= 0
    or value_score > score_above
    or share_before < share_above
union all
select
    customer_id,
    eval_month,
    'unranked' as broken
from {{ ref('customer_tier_monthly') }}
where value_rank is null and (value_score > 0 or raw_tier != 'C')
