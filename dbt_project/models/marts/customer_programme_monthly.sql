-- The key-account programme per customer and month (docs/programme.md): the service level and
-- discount package of the customer's industry and assigned tier, and what changed since the
-- previous month (a promoted customer's new package, a demoted one's).
with packages as (
    select
        p.*,
        lag(p.package_code) over w as previous_package_code,
        lag(p.account_team) over w as previous_account_team,
        lag(p.response_time_hours) over w as previous_response_time_hours,
        lag(p.visits_per_year) over w as previous_visits_per_year,
        lag(p.discount_pct) over w as previous_discount_pct,
        lag(p.payment_terms_days) over w as previous_payment_terms_days
    from {{ ref('int_customer_packages') }} as p
    window w as (partition by p.customer_id order by p.month_idx)
),

changes as (
    select
        *,
        case
            when previous_tier is null then 'new'
            when tier < previous_tier then 'upgraded'
            when tier > previous_tier then 'downgraded'
            else 'unchanged'
        end as package_change
    from packages
)

select
    ch.customer_id,
    c.customer_name,
    c.account_manager,
    ch.industry,
    {{ month_label('ch.eval_month') }} as eval_month,
    ch.tier,
    ch.previous_tier,
    ch.tier_change,
    ch.package_change,
    ch.package_industry,
    ch.package_code,
    ch.package_name,
    ch.account_team,
    ch.response_time_hours,
    ch.visits_per_year,
    ch.discount_pct,
    ch.payment_terms_days,
    ch.previous_package_code,
    ch.previous_account_team,
    ch.previous_response_time_hours,
    ch.previous_visits_per_year,
    ch.previous_discount_pct,
    ch.previous_payment_terms_days,
    case ch.package_change
        when 'new' then 'First package: ' || ch.package_code || '.'
        when 'unchanged' then null
        else concat_ws(
            '; ',
            ch.previous_package_code || ' → ' || ch.package_code,
            case
                when ch.discount_pct <> ch.previous_discount_pct
                    then
                        'discount ' || cast(ch.previous_discount_pct as varchar) || '% → '
                        || cast(ch.discount_pct as varchar) || '%'
            end,
            case
                when ch.payment_terms_days <> ch.previous_payment_terms_days
                    then
                        'payment terms ' || cast(ch.previous_payment_terms_days as varchar) || ' → '
                        || cast(ch.payment_terms_days as varchar) || ' days'
            end,
            case
                when ch.response_time_hours <> ch.previous_response_time_hours
                    then
                        'response ' || cast(ch.previous_response_time_hours as varchar) || ' → '
                        || cast(ch.response_time_hours as varchar) || ' h'
            end,
            case
                when ch.visits_per_year <> ch.previous_visits_per_year
                    then
                        'visits ' || cast(ch.previous_visits_per_year as varchar) || ' → '
                        || cast(ch.visits_per_year as varchar) || ' per year'
            end,
            case
                when ch.account_team <> ch.previous_account_team
                    then 'account team ' || ch.previous_account_team || ' → ' || ch.account_team
            end
        ) || '.'
    end as change_summary
from changes as ch
inner join {{ ref('stg_customers') }} as c on ch.customer_id = c.customer_id
