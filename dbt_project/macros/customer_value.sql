{# metrics.md "Customer value V = f(a, b, d, e)". One macro per coefficient. #}

{# a: nature coefficient (客户性质) by scope; an unknown scope counts as 1.0 (documented). #}
{% macro nature_coefficient(scope_col) -%}
    case {{ scope_col }}
    {%- for scope, coefficient in var('scope_coefficients').items() %}
        when '{{ scope | replace("'", "''") }}' then cast({{ coefficient }} as decimal(10, 4))
    {%- endfor %}
        else cast(1.0 as decimal(10, 4))
    end
{%- endmacro %}

{# b: current consumption level: revenue_12m, or gross_profit_12m with var value_basis. #}
{% macro current_level() -%}
    {%- if var('value_basis') == 'revenue' -%} revenue_12m
    {%- elif var('value_basis') == 'gross_profit' -%} gross_profit_12m
    {%- else -%}{{ exceptions.raise_compiler_error("var value_basis must be revenue or gross_profit") }}
    {%- endif -%}
{%- endmacro %}

{# d = b * min(max(1 + growth_rate, 0.5), 1.5); d = b when growth_rate is null.
   1 + growth_rate = revenue_12m / revenue_prev_12m, so the clamp is decided exactly by
   comparing revenues. Unclamped, d = b * rev / prev, right to the 16th decimal (see
   potential_level; docs/decisions.md). #}
{% macro potential_factor(rev, prev, projected='projected_revenue_12m') -%}
    {%- if potential_model() == 'regression' -%}
        {{ return(regression_potential_factor(rev, projected)) }}
    {%- endif -%}
    {{ potential_clamp(rev, prev,
        flat='cast(1 as decimal(38, 16))',
        at_min='cast(' ~ var('potential_factor_min') ~ ' as decimal(38, 16))',
        at_max='cast(' ~ var('potential_factor_max') ~ ' as decimal(38, 16))',
        unclamped='else ' ~ safe_ratio(rev, prev)) }}
{%- endmacro %}

{% macro potential_level(b, rev, prev, projected='projected_revenue_12m') -%}
    {%- if potential_model() == 'regression' -%}
        {{ return(money_mul(b, regression_potential_factor(rev, projected))) }}
    {%- endif -%}
    {#- d = b * rev / prev. Below 10^11 (b, rev and prev at 8 decimals, so that their products fit
        38 digits) it is q + (b * rev - q * prev) / prev: q, the double-precision quotient at 8
        places, corrected by the exact decimal residual, whose own quotient is tiny. d is then right
        to the 16th decimal at any size; a double alone holds about 16 significant digits, which at
        L put two V of x.4749999 on the wrong side of the half cent (tests/test_value_exactness.py).
        Larger values keep the double quotient, taken at 6 places when it lies within its own error
        of them (a tolerance capped far below the 6-place grid). -#}
    {%- set quotient = to_double(b, 16) ~ " * " ~ to_double(rev, 16) ~ " / " ~ to_double(prev, 16) -%}
    {%- set b8, rev8, prev8 = "cast(" ~ b ~ " as decimal(38, 8))", "cast(" ~ rev ~ " as decimal(38, 8))",
        "cast(" ~ prev ~ " as decimal(38, 8))" -%}
    {%- set q8 = to_decimal(quotient, 8) -%}
    {%- set residual = "(" ~ b8 ~ " * " ~ rev8 ~ " - " ~ q8 ~ " * " ~ prev8 ~ ")" -%}
    {%- set short = to_decimal(quotient, 6) -%}
    {%- set unclamped -%}
        when abs({{ b }}) < 100000000000 and abs({{ rev }}) < 100000000000 and abs({{ prev }}) < 100000000000
            then cast({{ q8 }} as {{ money_type() }})
            + {{ to_decimal(to_double(residual, 16) ~ " / " ~ to_double(prev8, 8), 16) }}
        when abs({{ quotient }} - {{ to_double(short, 6) }})
             <= least(2e-15 * abs({{ quotient }}), 1e-8)
            then cast({{ short }} as {{ money_type() }})
        else {{ money_mul(b, safe_ratio(rev, prev)) }}
    {%- endset -%}
    {{ potential_clamp(rev, prev,
        flat='cast(' ~ b ~ ' as ' ~ money_type() ~ ')',
        at_min='cast(' ~ b ~ ' * cast(' ~ var('potential_factor_min') ~ ' as decimal(10, 4)) as ' ~ money_type() ~ ')',
        at_max='cast(' ~ b ~ ' * cast(' ~ var('potential_factor_max') ~ ' as decimal(10, 4)) as ' ~ money_type() ~ ')',
        unclamped=unclamped) }}
{%- endmacro %}

{# The clamp of d, decided once for the displayed factor and for d itself: no previous revenue
   (growth_rate null) gives `flat`; 1 + growth_rate = rev / prev at or past a bound gives
   `at_min` / `at_max`; otherwise the `unclamped` branches (a case's trailing when/else). #}
{% macro potential_clamp(rev, prev, flat, at_min, at_max, unclamped) -%}
    case
        when {{ prev }} = 0 then {{ flat }}
        when {{ rev }} <= {{ var('potential_factor_min') }} * {{ prev }} then {{ at_min }}
        when {{ rev }} >= {{ var('potential_factor_max') }} * {{ prev }} then {{ at_max }}
        {{ unclamped }}
    end
{%- endmacro %}

{# d by var potential_model: `growth`, the spec's rule above (the default), or `regression`
   (docs/forecasts.md): the revenue the customer's shrunk trend projects over the next window_months
   months (int_potential_regression, a dbt Python model, so DuckDB only) stands for
   revenue_12m * (1 + growth_rate): factor = clamp(projected / revenue_12m, min, max), decided by
   comparing revenues as above; 1 when revenue_12m is 0 or nothing is projected. #}
{% macro potential_model() -%}
    {%- set model = var('potential_model', 'growth') -%}
    {%- if model not in ('growth', 'regression') -%}
        {{ exceptions.raise_compiler_error("var potential_model must be growth or regression, got: " ~ model) }}
    {%- endif -%}
    {%- if model == 'regression' and target.type != 'duckdb' -%}
        {{ exceptions.raise_compiler_error(
            "potential_model=regression needs the DuckDB warehouse: the regression is a dbt Python model, which "
            ~ "dbt-" ~ target.type ~ " cannot run. Use potential_model=growth (the default) on " ~ target.type ~ ".") }}
    {%- endif -%}
    {{ return(model) }}
{%- endmacro %}

{% macro regression_potential_factor(rev, projected) -%}
    case
        when {{ projected }} is null or {{ rev }} = 0 then cast(1 as decimal(38, 16))
        when {{ projected }} <= {{ var('potential_factor_min') }} * {{ rev }}
            then cast({{ var('potential_factor_min') }} as decimal(38, 16))
        when {{ projected }} >= {{ var('potential_factor_max') }} * {{ rev }}
            then cast({{ var('potential_factor_max') }} as decimal(38, 16))
        else {{ safe_ratio(projected, rev) }}
    end
{%- endmacro %}

{# e: correction coefficient (纠偏系数) from the collection rate, compared without division
   so that a rate exactly on a band's floor is in that band. A null rate (nothing due, or no
   payment feed delivered: collected is null) takes correction_when_nothing_due. #}
{% macro correction_coefficient(collected_col, billed_col) -%}
    case
        when {{ billed_col }} is null or {{ billed_col }} = 0 or {{ collected_col }} is null
            then cast({{ var('correction_when_nothing_due') }} as decimal(10, 4))
    {%- for band in var('correction_bands') %}
        when {{ collected_col }} >= {{ band.min_rate }} * {{ billed_col }}
            then cast({{ band.coefficient }} as decimal(10, 4))
    {%- endfor %}
        else cast({{ (var('correction_bands') | last).coefficient }} as decimal(10, 4))
    end
{%- endmacro %}

{# V = a * (0.7 * b + 0.3 * d) * e, exact decimal. The weighted sum (b, d at 16 decimals, weights
   at 4: scale 20) is taken at 17 decimals, exact for weights with one decimal, before a and e
   multiply it: each product then stays within 38 digits for V below about 10^17 (at scale 24,
   a * (...) overflowed from b of about 8.3 x 10^13). #}
{% macro customer_value(a, b, d, e) -%}
    cast(
        cast({{ a }} * cast(
            cast({{ var('value_weight_current') }} as decimal(10, 4)) * {{ b }}
            + cast({{ var('value_weight_potential') }} as decimal(10, 4)) * {{ d }}
            as decimal(38, 17)) as {{ money_type() }}) * {{ e }}
    as {{ money_type() }})
{%- endmacro %}
