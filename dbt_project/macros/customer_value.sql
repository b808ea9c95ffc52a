{# metrics.md "Customer value V = f(a, b, d, e)". One macro per coefficient. #}

{# a: nature coefficient (客户性质) by scope; an unknown scope counts as 1.0 (documented). #}
{% macro nature_coefficient(scope_col) -%}
    case {{ scope_col }}
    {%- for scope, coefficient in var('scope_coefficients').items() %}
        when '{{ scope }}' then cast({{ coefficient }} as decimal(10, 4))
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

{# d = b * min(max(1 + growth_rate, 0.5), 1.5); d = b when growth_rate is null. #}
{% macro potential_factor(growth_col) -%}
    case
        when {{ growth_col }} is null then cast(1 as decimal(38, 16))
        else cast(least(greatest(1 + {{ growth_col }}, {{ var('potential_factor_min') }}),
                        {{ var('potential_factor_max') }}) as decimal(38, 16))
    end
{%- endmacro %}

{# e: correction coefficient (纠偏系数) from the collection rate, compared without division
   so that a rate exactly on a band's floor is in that band. #}
{% macro correction_coefficient(collected_col, billed_col) -%}
    case
        when {{ billed_col }} is null or {{ billed_col }} = 0
            then cast({{ var('correction_when_nothing_due') }} as decimal(10, 4))
    {%- for band in var('correction_bands') %}
        when {{ collected_col }} >= {{ band.min_rate }} * {{ billed_col }}
            then cast({{ band.coefficient }} as decimal(10, 4))
    {%- endfor %}
        else cast({{ (var('correction_bands') | last).coefficient }} as decimal(10, 4))
    end
{%- endmacro %}

{# V = a * (0.7 * b + 0.3 * d) * e, exact decimal. #}
{% macro customer_value(a, b, d, e) -%}
    cast(
        cast({{ a }} * (
            cast({{ var('value_weight_current') }} as decimal(10, 4)) * {{ b }}
            + cast({{ var('value_weight_potential') }} as decimal(10, 4)) * {{ d }}
        ) as {{ money_type() }}) * {{ e }}
    as {{ money_type() }})
{%- endmacro %}
