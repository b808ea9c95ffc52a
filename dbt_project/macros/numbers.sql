{# Exact-decimal helpers (metrics.md "Arithmetic"): money stays decimal end to end. #}

{% macro money_type() -%} decimal(38, 16) {%- endmacro %}
{% macro input_decimal_type() -%} decimal(38, 8) {%- endmacro %}

{# Text of the inbox (checked at ingest) -> input_decimal_type(). DuckDB 1.4 casts text to a
   decimal wider than 18 digits about 100x slower than to decimal(18, 8) (docs/benchmarks.md);
   the narrow cast, widened, is the same value, and the wide cast only runs for values of
   10^10 or more. #}
{% macro cast_input_decimal(text_expr) -%}
    {{ return(adapter.dispatch('cast_input_decimal', 'keyaccounts')(text_expr)) }}
{%- endmacro %}
{% macro default__cast_input_decimal(text_expr) -%}
    cast({{ text_expr }} as {{ input_decimal_type() }})
{%- endmacro %}
{% macro duckdb__cast_input_decimal(text_expr) -%}
    coalesce(cast(try_cast({{ text_expr }} as decimal(18, 8)) as {{ input_decimal_type() }}),
             cast({{ text_expr }} as {{ input_decimal_type() }}))
{%- endmacro %}

{# a * b for money with a ratio, keeping the scale bounded so 38 digits never overflow. #}
{% macro money_mul(money, factor) -%}
    cast(cast({{ money }} as decimal(38, 8)) * cast({{ factor }} as decimal(38, 16)) as {{ money_type() }})
{%- endmacro %}

{# num / den as a decimal: the quotient is taken in double precision and snapped to 16
   places, so a quotient with a short decimal expansion (1.25, 0.12345) is exact.
   input_scale: the scale of num and den (decimal(38, input_scale); 0 for integers), which
   decides how they convert to double (to_double). #}
{% macro safe_ratio(num, den, input_scale=16) -%}
    case when {{ den }} = 0 then null
         else {{ to_decimal(to_double(num, input_scale) ~ ' / ' ~ to_double(den, input_scale), 16) }} end
{%- endmacro %}

{# Published rounding, half away from zero. Quotients come from double precision, so they are
   snapped to 12 places first (removing binary noise, ~1e-14 for values up to 100). #}
{% macro publish_round(expr, digits) -%}
    {{ round_exact(to_decimal(expr, 12), digits) }}
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


{# ---------------------------------------------------------------------------------------
   Conversions between decimal and double precision. Every published quotient goes through
   them, so they follow one set of rules on every database: DuckDB's (the reference build).

   to_double(expr, decimal_scale): expr, an integer (decimal_scale 0) or a decimal(38,
   decimal_scale), as a double. DuckDB converts a decimal whose unscaled value exceeds 2^53 as
   (integer part) + (fraction) / 10^scale, each part converted on its own, which is not always
   the nearest double; postgres__ does the same, so that quotients agree to the last bit.

   to_decimal(expr, scale): expr, a double or a decimal, as decimal(38, scale), rounded half
   away from zero; a double is first multiplied by 10^scale in double precision (DuckDB's cast).
   PostgreSQL's own cast of a double to numeric keeps 15 significant digits, so postgres__ reads
   the exact value of the double through to_char(..., 'EEEE') instead.
   --------------------------------------------------------------------------------------- #}
{% macro double_type() -%}
    {{ return(adapter.dispatch('double_type', 'keyaccounts')()) }}
{%- endmacro %}
{% macro default__double_type() -%} double precision {%- endmacro %}
{% macro duckdb__double_type() -%} double {%- endmacro %}

{% macro to_double(expr, decimal_scale=0) -%}
    {{ return(adapter.dispatch('to_double', 'keyaccounts')(expr, decimal_scale)) }}
{%- endmacro %}
{% macro default__to_double(expr, decimal_scale=0) -%} cast({{ expr }} as {{ double_type() }}) {%- endmacro %}
{% macro postgres__to_double(expr, decimal_scale=0) -%}
    {%- if decimal_scale == 0 -%}
        cast({{ expr }} as double precision)
    {%- else -%}
        {%- set x = "cast(" ~ expr ~ " as numeric(38, " ~ decimal_scale ~ "))" -%}
        (case
            when abs({{ x }}) * 1e{{ decimal_scale }} <= 9007199254740992 then cast({{ x }} as double precision)
            else {{ pg_hugeint_to_double("trunc(" ~ x ~ ")") }}
                + {{ pg_hugeint_to_double("(" ~ x ~ " - trunc(" ~ x ~ ")) * 1e" ~ decimal_scale) }}
                / cast(1e{{ decimal_scale }} as double precision)
        end)
    {%- endif -%}
{%- endmacro %}
{# DuckDB's conversion of a 128-bit integer to double (a negative one above -2^64 as -(|n| - 1) - 1). #}
{% macro pg_hugeint_to_double(n) -%}
    (case when {{ n }} >= 0 then cast({{ n }} as double precision)
        else -cast(-({{ n }}) - 1 as double precision) - 1 end)
{%- endmacro %}

{% macro to_decimal(expr, scale) -%}
    {{ return(adapter.dispatch('to_decimal', 'keyaccounts')(expr, scale)) }}
{%- endmacro %}
{% macro default__to_decimal(expr, scale) -%} cast({{ expr }} as decimal(38, {{ scale }})) {%- endmacro %}
{% macro postgres__to_decimal(expr, scale) -%}
    {#- double * numeric is computed in double precision, numeric * numeric exactly; 61 significant
        digits hold any double in the range used here exactly -#}
    cast(cast(to_char(({{ expr }}) * 1e{{ scale }}, '9.{{ "9" * 60 }}EEEE') as numeric) * 1e-{{ scale }}
        as numeric(38, {{ scale }}))
{%- endmacro %}
