{# Forecast helpers (docs/forecasts.md): the Markov tier-migration chain works on probabilities
   held as decimal(38, 16), so that DuckDB and PostgreSQL give the same digits. #}

{# The horizons (months ahead) of var forecast_horizons, checked: positive whole months. #}
{% macro forecast_horizons() -%}
    {%- set horizons = var('forecast_horizons') -%}
    {%- if horizons is string or horizons is not iterable or horizons | length == 0 -%}
        {{ exceptions.raise_compiler_error("var forecast_horizons must be a list of months, e.g. [1, 3, 6]") }}
    {%- endif -%}
    {%- for h in horizons -%}
        {%- if h is not number or h | int != h or h < 1 -%}
            {{ exceptions.raise_compiler_error(
                "var forecast_horizons: every horizon is a whole number of months >= 1, got " ~ h) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(horizons | map('int') | unique | sort | list) }}
{%- endmacro %}

{# The furthest horizon: how many matrix steps the projection takes. #}
{% macro forecast_steps() -%}
    {{ return(forecast_horizons() | max) }}
{%- endmacro %}

{# A product of two probabilities (or of a probability and a sum of them), rounded half away from
   zero to 16 places on both databases (a product of two decimal(38, 16) has 32 places). #}
{% macro prob_product(a, b) -%}
    cast(round(({{ a }}) * ({{ b }}), 16) as decimal(38, 16))
{%- endmacro %}

{# sqrt of a non-negative decimal(38, 16) variance, as decimal(38, 16): the square root is taken in
   double precision (correctly rounded on both databases). #}
{% macro std_error(variance) -%}
    {{ to_decimal('sqrt(' ~ to_double('greatest(' ~ variance ~ ', 0)', 16) ~ ')', 16) }}
{%- endmacro %}

{# The three tiers as a relation (tier). #}
{% macro tier_values() -%}
    select 'A' as tier
    union all
    select 'B' as tier
    union all
    select 'C' as tier
{%- endmacro %}

{# The horizons as a relation (horizon). #}
{% macro horizon_values() -%}
    {%- for h in forecast_horizons() %}
    select {{ h }} as horizon
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{# CTEs mix_1 .. mix_<steps>: the expected tier mix k months ahead, mix_k = mix_(k-1) x P, from
   mix_0 and `matrix` (each CTE followed by a comma). #}
{% macro markov_mix_ctes(steps) -%}
    {%- for k in range(1, steps + 1) %}
mix_{{ k }} as (
    select
        s.month_idx,
        p.to_tier as tier,
        cast(sum({{ prob_product('s.tier_share', 'p.probability') }}) as decimal(38, 16)) as tier_share
    from mix_{{ k - 1 }} as s
    inner join matrix as p
        on s.month_idx = p.month_idx and s.tier = p.from_tier
    group by s.month_idx, p.to_tier
),
    {% endfor %}
{%- endmacro %}

{# CTEs power_1 .. power_<steps>: the k-step matrix P^k = P^(k-1) x P, from power_0 and `matrix`
   (each CTE followed by a comma). #}
{% macro markov_power_ctes(steps) -%}
    {%- for k in range(1, steps + 1) %}
power_{{ k }} as (
    select
        q.month_idx,
        q.from_tier,
        p.to_tier,
        cast(sum({{ prob_product('q.probability', 'p.probability') }}) as decimal(38, 16)) as probability
    from power_{{ k - 1 }} as q
    inner join matrix as p
        on q.month_idx = p.month_idx and q.to_tier = p.from_tier
    group by q.month_idx, q.from_tier, p.to_tier
),
    {% endfor %}
{%- endmacro %}

{# <prefix>_0 .. <prefix>_<steps> stacked, with their step number. #}
{% macro stacked_steps(prefix, columns, steps) -%}
    {%- for k in range(0, steps + 1) %}
    select
        {{ k }} as step_number,
        {{ columns | join(', ') }}
    from {{ prefix }}_{{ k }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{# Each customer-month's tier h months later for every horizon h (tier_<h>, and month_idx_<h> to
   check that it is h months later), as select-list items of a query over int_tier_assignment with a
   window `customer_months`. #}
{% macro later_tier_columns() -%}
    {%- for h in forecast_horizons() %}
        lead(tier, {{ h }}) over customer_months as tier_{{ h }},
        lead(month_idx, {{ h }}) over customer_months as month_idx_{{ h }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{# From `relation` (with later_tier_columns): customers per month, horizon and tier h months later. #}
{% macro later_tier_counts(relation) -%}
    {%- for h in forecast_horizons() %}
    select
        month_idx,
        {{ h }} as horizon,
        tier_{{ h }} as tier,
        count(*) as customers
    from {{ relation }}
    where month_idx_{{ h }} = month_idx + {{ h }}
    group by month_idx, tier_{{ h }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
