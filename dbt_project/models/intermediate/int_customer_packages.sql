-- The programme package of each evaluated customer and month (docs/programme.md): the row of
-- seeds/programme_packages.csv for the customer's industry and its assigned tier that month
-- (after grace period and overrides); the `default` row when the industry is empty or has no
-- row of its own for that tier.
select
    m.customer_id,
    m.month_idx,
    m.eval_month,
    m.month_end,
    c.industry,
    t.tier,
    t.previous_tier,
    t.tier_change,
    coalesce(p.industry, d.industry) as package_industry,
    coalesce(p.package_code, d.package_code) as package_code,
    coalesce(p.package_name, d.package_name) as package_name,
    coalesce(p.account_team, d.account_team) as account_team,
    coalesce(p.response_time_hours, d.response_time_hours) as response_time_hours,
    coalesce(p.visits_per_year, d.visits_per_year) as visits_per_year,
    coalesce(p.discount_pct, d.discount_pct) as discount_pct,
    coalesce(p.payment_terms_days, d.payment_terms_days) as payment_terms_days
from {{ ref('int_customer_months') }} as m
inner join {{ ref('stg_customers') }} as c on m.customer_id = c.customer_id
inner join {{ ref('int_tier_assignment') }} as t on m.customer_id = t.customer_id and m.month_idx = t.month_idx
left join {{ ref('programme_packages') }} as p on c.industry = p.industry and t.tier = p.tier
left join {{ ref('programme_packages') }} as d on d.industry = 'default' and t.tier = d.tier
