-- The programme table (seeds/programme_packages.csv) needs a `default` row for each tier: a
-- customer whose industry is empty or has no row of its own takes the default package.
select t.tier
from (
    select 'A' as tier
    union all select 'B'
    union all select 'C'
) as t
left join {{ ref('programme_packages') }} as p
    on p.industry = 'default' and p.tier = t.tier
where p.tier is null
