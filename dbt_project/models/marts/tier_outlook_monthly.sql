-- docs/forecasts.md "Customer outlook": per evaluation month and state (tier, raw tier) of its
-- customers, the probabilities of being A, B or C next month (a few rows a month). The grace period
-- makes the tier alone a poor guide for one customer (an A customer whose raw tier is already B is
-- demoted next month unless it recovers; one whose raw tier is A cannot be), so the state is (tier,
-- raw tier): its transitions in the look-back window, blended with the tier's row of the matrix,
-- which weighs as var forecast_outlook_prior_weight transitions:
-- p(j) = (n_state(j) + k P(tier, j)) / (n_state + k). Every month is kept, so a past month's report
-- lists its own customers at risk whatever was built after it; customer_tier_outlook gives the
-- latest month's to each customer.
with months as (
    select distinct month_idx from {{ ref('int_tier_transition_matrix') }}
),

state_counts as (
    select
        m.month_idx,
        c.from_tier as tier,
        c.from_raw_tier as raw_tier,
        c.to_tier,
        sum(c.transitions) as transitions
    from months as m
    inner join {{ ref('int_tier_transition_counts') }} as c
        on c.month_idx between m.month_idx - {{ var('forecast_lookback_months') - 1 }} and m.month_idx
    group by m.month_idx, c.from_tier, c.from_raw_tier, c.to_tier
),

states as (
    select distinct
        a.month_idx,
        a.tier,
        a.raw_tier
    from {{ ref('int_tier_assignment') }} as a
    inner join months as m on a.month_idx = m.month_idx
),

state_rows as (
    select
        s.month_idx,
        s.tier,
        s.raw_tier,
        p.to_tier,
        p.probability as tier_probability,
        coalesce(c.transitions, 0) as transitions,
        sum(coalesce(c.transitions, 0)) over (partition by s.month_idx, s.tier, s.raw_tier) as state_transitions
    from states as s
    inner join {{ ref('int_tier_transition_matrix') }} as p
        on s.month_idx = p.month_idx and s.tier = p.from_tier
    left join state_counts as c
        on
            s.month_idx = c.month_idx and s.tier = c.tier and s.raw_tier = c.raw_tier
            and p.to_tier = c.to_tier
),

blended as (
    select
        *,
        case
            when state_transitions + {{ var('forecast_outlook_prior_weight') }} = 0 then tier_probability
            -- the prior's share is taken to 16 places first: a product of two decimal(38, 16)
            -- has 32 places, which leaves room for 6 integer digits only, and a state sees
            -- millions of transitions at 200,000 customers
            else {{ safe_ratio(
                'transitions + ' ~ prob_product(
                    'cast(' ~ var('forecast_outlook_prior_weight') ~ ' as decimal(38, 16))', 'tier_probability'),
                'state_transitions + ' ~ var('forecast_outlook_prior_weight')
            ) }}
        end as probability
    from state_rows
),

state_outlook as (
    select
        month_idx,
        tier,
        raw_tier,
        max(state_transitions) as state_transitions,
        sum(case when to_tier = 'A' then probability else 0 end) as prob_a,
        sum(case when to_tier = 'B' then probability else 0 end) as prob_b,
        sum(case when to_tier = 'C' then probability else 0 end) as prob_c,
        -- a worse tier next month ('A' < 'B' < 'C' means better)
        sum(case when to_tier > tier then probability else 0 end) as prob_down
    from blended
    group by month_idx, tier, raw_tier
),

-- published per state (a few rows a month), then given to each customer in that state
published as (
    select
        month_idx,
        tier,
        raw_tier,
        {{ month_label(month_start_from_index('month_idx')) }} as eval_month,
        {{ publish_round('prob_a', 4) }} as prob_a_next,
        {{ publish_round('prob_b', 4) }} as prob_b_next,
        {{ publish_round('prob_c', 4) }} as prob_c_next,
        {{ publish_round('prob_down', 4) }} as prob_down_next,
        cast(state_transitions as bigint) as state_transitions
    from state_outlook
)

select
    eval_month,
    tier,
    raw_tier,
    prob_a_next,
    prob_b_next,
    prob_c_next,
    prob_down_next,
    state_transitions
from published
