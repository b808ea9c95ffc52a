with latest_tier as (
    select
        customer_id,
        eval_month,
        tier
    from (
        select
            customer_id,
            eval_month,
            tier,
            row_number() over (partition by customer_id order by {{ byte_order('eval_month') }} desc) as recency
        from {{ ref('customer_tier_monthly') }}
    ) as t
    where recency = 1
)

select
    c.customer_id,
    c.customer_name,
    c.industry,
    c.scope,
    c.region,
    c.account_manager,
    c.signed_on,
    f.first_order_date,
    t.tier as current_tier,
    t.eval_month as current_tier_month,
    c.updated_at_utc
from {{ ref('stg_customers') }} as c
left join {{ ref('int_customer_first_orders') }} as f
    on c.customer_id = f.customer_id
left join latest_tier as t
    on c.customer_id = t.customer_id
