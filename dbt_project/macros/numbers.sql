{# Exact-decimal helpers (metrics.md "Arithmetic"): money stays decimal end to end. #}

{% macro money_type() -%} decimal(38, 16) {%- endmacro %}
{% macro input_decimal_type() -%} decimal(38, 8) {%- endmacro %}
{# fx rates keep 18 decimals: a rate written by a program (1/7.1 = 0.1408450704225352) is not
   rounded, so amounts convert at the rate as delivered (metrics.md "Arithmetic"). #}
{% macro rate_type() -%} decimal(38, 18) {%- endmacro %}

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

{# Text of a rate (checked at ingest: > 0) -> rate_type(). The fx feed is small: no fast path. #}
{% macro cast_input_rate(text_expr) -%}
    cast({{ text_expr }} as {{ rate_type() }})
{%- endmacro %}

{# x * y as money, right to the 16th decimal, for x at 8 decimals and y at up to 18, without
   overflowing 38 digits: y = y_hi (y at 8 decimals) + y_lo (|y_lo| <= 5e-9). x * y_hi is exact
   at 16 decimals; x * y_lo is taken at 16 (rounded half away from zero, both databases), and at
   scale 8 + y's scale it fits 38 digits for any x below 10^18. The sum is x * y rounded once at
   the 16th decimal. (x * y in one product has scale 26 at y's 18, which overflows above 10^12.)
   Rescaling a 38-digit decimal is slow in DuckDB (about 1 us a value), so y = 1 (the reporting
   currency) and a y of 8 decimals or fewer (y_lo = 0) skip what they do not need. #}
{% macro split_mul(x, y) -%}
    {%- set y_hi = 'cast(round(' ~ y ~ ', 8) as decimal(38, 8))' -%}
    case
        when {{ y }} = 1 then cast({{ x }} as {{ money_type() }})
        when {{ y }} = {{ y_hi }} then cast({{ x }} * {{ y_hi }} as {{ money_type() }})
        else cast({{ x }} * {{ y_hi }} + cast({{ x }} * ({{ y }} - {{ y_hi }}) as {{ money_type() }}) as {{ money_type() }})
    end
{%- endmacro %}

{# An amount (decimal(38, 8)) in the reporting currency: amount * rate, not rounded beyond money's
   16 decimals (metrics.md). Every conversion goes through this macro. #}
{% macro to_reporting(amount, rate) -%}
    {{ split_mul('cast(' ~ amount ~ ' as ' ~ input_decimal_type() ~ ')', 'cast(' ~ rate ~ ' as ' ~ rate_type() ~ ')') }}
{%- endmacro %}

{# a * b for money with a ratio (decimal(38, 16)), right to the 16th decimal; no overflow while
   money is below 10^18 (a single product at scale 24 overflowed above 10^14). #}
{% macro money_mul(money, factor) -%}
    {{ split_mul('cast(' ~ money ~ ' as decimal(38, 8))', 'cast(' ~ factor ~ ' as decimal(38, 16))') }}
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
    case when {{ currency_col }} = '{{ var("reporting_currency") }}' then cast(1 as {{ rate_type() }})
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
