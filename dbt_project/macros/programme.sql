{# The key-account programme (docs/programme.md): interaction windows and their two risk flags. #}

{# Microseconds since the epoch of a timestamp (UTC, without time zone), as a bigint: durations
   are exact integers on every database. #}
{% macro epoch_microseconds(ts) -%}
    {{ return(adapter.dispatch('epoch_microseconds', 'keyaccounts')(ts)) }}
{%- endmacro %}
{% macro default__epoch_microseconds(ts) -%} cast(extract(epoch from {{ ts }}) * 1000000 as bigint) {%- endmacro %}
{% macro duckdb__epoch_microseconds(ts) -%} epoch_us({{ ts }}) {%- endmacro %}

{# The last `risk_complaints_recent_months` months (M included), and as many months before them. #}
{% macro window_complaints_recent() -%}
    partition by customer_id order by month_idx
    range between {{ var('risk_complaints_recent_months') - 1 }} preceding and current row
{%- endmacro %}
{% macro window_complaints_prior() -%}
    partition by customer_id order by month_idx
    range between {{ 2 * var('risk_complaints_recent_months') - 1 }} preceding
        and {{ var('risk_complaints_recent_months') }} preceding
{%- endmacro %}

{# complaints_rising: at least risk_complaints_rising_min complaints in the recent months and more
   than risk_complaints_rising_ratio x those of the months before them (no division). #}
{% macro complaints_rising(recent, prior) -%}
    ({{ recent }} >= {{ var('risk_complaints_rising_min') }}
        and {{ recent }} > {{ var('risk_complaints_rising_ratio') }} * {{ prior }})
{%- endmacro %}

{# under_visited: fewer visits in W(M) than the packages held during W(M) owe. #}
{% macro under_visited(visits, expected) -%}
    ({{ visits }} < {{ expected }})
{%- endmacro %}
