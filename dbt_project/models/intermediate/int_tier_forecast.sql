-- docs/forecasts.md "Markov tier migration": the tier mix of the customers evaluated at M,
-- projected h months ahead by the matrix estimated at M (mix_h = mix_0 x P^h, one matrix step
-- per CTE), with two variances of each projected share:
-- - matrix: the estimation error of P, propagated by the delta method. Each row of P is a
--   multinomial estimate from from_total transitions, so for target tier j
--   var = sum_i (sum_l P(i,l) g(i,l)^2 - (sum_l P(i,l) g(i,l))^2) / from_total(i), with
--   g(i,l) = d mix_h(j) / d P(i,l) = sum_{k<h} mix_k(i) P^(h-1-k)(l,j);
-- - outcome: the customers move independently, so the realised share scatters around its
--   expectation: var = sum_i N_i P^h(i,j) (1 - P^h(i,j)) / N^2.
-- Everything is decimal(38, 16), products rounded to 16 places, so both databases agree.
{%- set steps = forecast_steps() %}
with matrix as (
    select
        month_idx,
        from_tier,
        to_tier,
        from_total,
        probability
    from {{ ref('int_tier_transition_matrix') }}
),

months as (
    select distinct month_idx from matrix
),

tiers as (
    {{ tier_values() }}
),

horizons as (
    {{ horizon_values() }}
),

current_tiers as (
    select
        a.month_idx,
        a.tier,
        count(*) as customers
    from {{ ref('int_tier_assignment') }} as a
    inner join months as m on a.month_idx = m.month_idx
    group by a.month_idx, a.tier
),

mix as (
    select
        m.month_idx,
        t.tier,
        coalesce(c.customers, 0) as customers,
        sum(coalesce(c.customers, 0)) over (partition by m.month_idx) as cohort_customers
    from months as m
    cross join tiers as t
    left join current_tiers as c
        on m.month_idx = c.month_idx and t.tier = c.tier
),

-- mix_k: the expected tier mix k months ahead
mix_0 as (
    select
        month_idx,
        tier,
        cast({{ safe_ratio('customers', 'cohort_customers', input_scale=0) }} as decimal(38, 16)) as tier_share
    from mix
),

{{ markov_mix_ctes(steps) }}

-- power_k: the k-step matrix P^k (power_0 the identity)
power_0 as (
    select
        month_idx,
        from_tier,
        to_tier,
        cast(case when from_tier = to_tier then 1 else 0 end as decimal(38, 16)) as probability
    from matrix
),

{{ markov_power_ctes(steps) }}

mixes as (
    {{ stacked_steps('mix', ['month_idx', 'tier', 'tier_share'], steps) }}
),

powers as (
    {{ stacked_steps('power', ['month_idx', 'from_tier', 'to_tier', 'probability'], steps) }}
),

-- g(i, l) of the delta method, per horizon and target tier
sensitivities as (
    select
        h.horizon,
        s.month_idx,
        s.tier as from_tier,
        q.from_tier as via_tier,
        q.to_tier as tier,
        sum({{ prob_product('s.tier_share', 'q.probability') }}) as g
    from horizons as h
    inner join mixes as s on h.horizon > s.step_number
    inner join powers as q
        on s.month_idx = q.month_idx and q.step_number = h.horizon - 1 - s.step_number
    group by h.horizon, s.month_idx, s.tier, q.from_tier, q.to_tier
),

row_moments as (
    select
        g.horizon,
        g.month_idx,
        g.tier,
        g.from_tier,
        max(p.from_total) as from_total,
        sum({{ prob_product('p.probability', prob_product('g.g', 'g.g')) }}) as second_moment,
        sum({{ prob_product('p.probability', 'g.g') }}) as first_moment
    from sensitivities as g
    inner join matrix as p
        on g.month_idx = p.month_idx and g.from_tier = p.from_tier and g.via_tier = p.to_tier
    group by g.horizon, g.month_idx, g.tier, g.from_tier
),

matrix_variance as (
    select
        horizon,
        month_idx,
        tier,
        sum(case
            when from_total > 0
                then {{ safe_ratio(
                    'greatest(second_moment - ' ~ prob_product('first_moment', 'first_moment') ~ ', 0)',
                    'from_total'
                ) }}
            else 0
        end) as variance
    from row_moments
    group by horizon, month_idx, tier
),

outcome_variance as (
    select
        h.horizon,
        q.month_idx,
        q.to_tier as tier,
        sum(m.customers * {{ prob_product('q.probability', '1 - q.probability') }}) as count_variance
    from horizons as h
    inner join powers as q on h.horizon = q.step_number
    inner join mix as m
        on q.month_idx = m.month_idx and q.from_tier = m.tier
    group by h.horizon, q.month_idx, q.to_tier
)

select
    m.month_idx,
    h.horizon,
    m.tier,
    cast(m.cohort_customers as bigint) as cohort_customers,
    cast(m.customers as bigint) as current_customers,
    s0.tier_share as current_share,
    s.tier_share as forecast_share,
    cast(mv.variance as decimal(38, 16)) as variance_matrix,
    cast({{ safe_ratio('ov.count_variance', 'm.cohort_customers * m.cohort_customers') }} as decimal(38, 16))
        as variance_outcome
from mix as m
cross join horizons as h
inner join mix_0 as s0
    on m.month_idx = s0.month_idx and m.tier = s0.tier
inner join mixes as s
    on m.month_idx = s.month_idx and m.tier = s.tier and h.horizon = s.step_number
inner join matrix_variance as mv
    on m.month_idx = mv.month_idx and m.tier = mv.tier and h.horizon = mv.horizon
inner join outcome_variance as ov
    on m.month_idx = ov.month_idx and m.tier = ov.tier and h.horizon = ov.horizon
