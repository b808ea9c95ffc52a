-- outputs.md: the value mart holds V with every input beside it, the tier table ranks on the same
-- value_score; and a rate (metrics.md "Receivables") lies between 0 and 1. Rows breaking this fail
-- the build, so nothing is published.
select
    v.customer_id,
    v.eval_month,
    'value_score' as broken
from {{ ref('customer_value_monthly') }} as v
full outer join {{ ref('customer_tier_monthly') }} as t
    on v.customer_id = t.customer_id and v.eval_month = t.eval_month
where v.value_score is distinct from t.value_score
union all
select
    customer_id,
    eval_month,
    'rate' as broken
from {{ ref('customer_receivables_monthly') }}
where collection_rate_12m not between 0 and 1 or on_time_rate_12m not between 0 and 1
