{# Exact-decimal helpers (metrics.md "Arithmetic"): money stays decimal end to end. #}

{% macro money_type() -%} decimal(38, 16) {%- endmacro %}
{% macro input_decimal_type() -%} decimal(38, 8) {%- endmacro %}

{# a * b for money with a ratio, keeping the scale bounded so 38 digits never overflow. #}
{% macro money_mul(money, factor) -%}
    cast(cast({{ money }} as decimal(38, 8)) * cast({{ factor }} as decimal(38, 16)) as {{ money_type() }})
{%- endmacro %}

{# num / den as a decimal: the quotient is taken in double precision and snapped to 16
   places, so a quotient with a short decimal expansion (1.25, 0.12345) is exact. #}
{% macro safe_ratio(num, den) -%}
    case when {{ den }} = 0 then null
         else cast(cast({{ num }} as double) / cast({{ den }} as double) as decimal(38, 16)) end
{%- endmacro %}

{# Published rounding, half away from zero. Quotients come from double precision, so they are
   snapped to 12 places first (removing binary noise, ~1e-14 for values up to 100). #}
{% macro publish_round(expr, digits) -%}
    cast(round(cast({{ expr }} as decimal(38, 12)), {{ digits }}) as decimal(38, {{ digits }}))
{%- endmacro %}

{# Rounding of an exact decimal (money, V): no snapping, half away from zero. #}
{% macro round_exact(expr, digits) -%}
    cast(round({{ expr }}, {{ digits }}) as decimal(38, {{ digits }}))
{%- endmacro %}

{# Rate to the reporting currency: 1 for the reporting currency itself, else the month's
   fx rate (null when missing: the row is held back, see int_fx_held_back). #}
{% macro fx_rate_for(currency_col, rate_col) -%}
    case when {{ currency_col }} = '{{ var("reporting_currency") }}' then cast(1 as {{ input_decimal_type() }})
         else {{ rate_col }} end
{%- endmacro %}


{# metrics.md: amounts convert with the rate of the row's own month. Joins the month's rate as
   `fx`; use fx_rate_for(<alias>.currency, 'fx.rate_to_reporting') for the rate. #}
{% macro join_month_rate(alias, date_col) -%}
    left join {{ ref('stg_fx_rates') }} as fx
        on
            {{ alias }}.currency = fx.currency
            and cast(date_trunc('month', {{ alias }}.{{ date_col }}) as date) = fx.month_start
{%- endmacro %}
