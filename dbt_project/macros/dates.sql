{# Calendar helpers shared by every rule of metrics.md that works on evaluation months. #}

{# Month index: months since year 0, so W(M) is `idx between M - 11 and M`. #}
{% macro month_index(date_expr) -%}
    (extract(year from {{ date_expr }}) * 12 + extract(month from {{ date_expr }}) - 1)
{%- endmacro %}

{% macro month_start_from_index(idx) -%}
    make_date(cast({{ int_div(idx, 12) }} as integer), cast({{ idx }} - {{ int_div(idx, 12) }} * 12 + 1 as integer), 1)
{%- endmacro %}

{% macro month_end(month_start) -%}
    cast({{ month_start }} + interval '1 month' - interval '1 day' as date)
{%- endmacro %}

{% macro int_div(a, b) -%}
    {{ return(adapter.dispatch('int_div', 'keyaccounts')(a, b)) }}
{%- endmacro %}
{% macro default__int_div(a, b) -%} div({{ a }}, {{ b }}) {%- endmacro %}
{% macro duckdb__int_div(a, b) -%} ({{ a }} // {{ b }}) {%- endmacro %}

{# The evaluation month asked for (--through), as a month index; a missing or malformed value stops the build. #}
{% macro through_month_index() -%}
    {%- set m = var('through_month') -%}
    {#- at parse time (dbt parse, Cosmos manifests) no month is needed -#}
    {%- if not execute and m is none -%}{%- set m = '2000-01' -%}{%- endif -%}
    {%- if m is none or not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])$', m | string) -%}
        {{ exceptions.raise_compiler_error("var through_month must be YYYY-MM, got: " ~ m) }}
    {%- endif -%}
    {%- set parts = (m | string).split('-') -%}
    {{ parts[0] | int * 12 + parts[1] | int - 1 }}
{%- endmacro %}

{# Text timestamp -> UTC instant: an offset is applied; no offset means business time. #}
{% macro parse_timestamp_utc(col) -%}
    {#- ISO 8601 allows minute precision; DuckDB's cast needs seconds (the ingest check does the same) -#}
    {%- set col = "regexp_replace(trim(" ~ col ~ "), '^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2})(Z|[+-].*)?$', '\\1:00\\2')" -%}
    {#- digits past the microsecond are dropped (DuckDB's cast truncates them, PostgreSQL's would round) -#}
    {%- set col = "regexp_replace(" ~ col ~ ", '([.][0-9]{6})[0-9]+', '\\1')" -%}
    {%- set offset_at_end %}'[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'{% endset -%}
    case
        when nullif(trim({{ col }}), '') is null then null
        -- an offset only counts after a time of day: '2024-05-02' ends in '-02', which is no offset
        when {{ matches_regex("trim(" ~ col ~ ")", offset_at_end) }}
            then {{ tz_to_utc("cast(trim(" ~ col ~ ") as timestamptz)") }}
        else {{ local_to_utc("cast(trim(" ~ col ~ ") as timestamp)") }}
    end
{%- endmacro %}

{# Whether text matches a regular expression (a quoted SQL literal) anywhere. #}
{% macro matches_regex(expr, pattern) -%}
    {{ return(adapter.dispatch('matches_regex', 'keyaccounts')(expr, pattern)) }}
{%- endmacro %}
{% macro default__matches_regex(expr, pattern) -%} ({{ expr }} ~ {{ pattern }}) {%- endmacro %}
{% macro duckdb__matches_regex(expr, pattern) -%} regexp_matches({{ expr }}, {{ pattern }}) {%- endmacro %}

{% macro tz_to_utc(tstz) -%} timezone('UTC', {{ tstz }}) {%- endmacro %}
{% macro local_to_utc(ts) -%} timezone('UTC', timezone('{{ var("business_time_zone") }}', {{ ts }})) {%- endmacro %}

{# Calendar date of a UTC instant in the business time zone. #}
{% macro business_date(utc_ts) -%}
    cast(timezone('{{ var("business_time_zone") }}', timezone('UTC', {{ utc_ts }})) as date)
{%- endmacro %}

{# end(M) of the month asked for, as a date literal. #}
{% macro through_month_end() -%}
    {%- set idx = through_month_index() | trim | int -%}
    {%- set y = (idx + 1) // 12 -%}{%- set m = (idx + 1) % 12 + 1 -%}
    {%- set last_day = modules.datetime.date(y, m, 1) - modules.datetime.timedelta(days=1) -%}
    cast('{{ last_day.isoformat() }}' as date)
{%- endmacro %}

{# Window frames over the customer x month_idx grid: W(M) and P(M) of metrics.md. #}
{% macro window_w() -%}
    partition by customer_id order by month_idx
    range between {{ var('window_months') - 1 }} preceding and current row
{%- endmacro %}

{% macro window_p() -%}
    partition by customer_id order by month_idx
    range between {{ 2 * var('window_months') - 1 }} preceding and {{ var('window_months') }} preceding
{%- endmacro %}

{% macro window_to_date() -%}
    partition by customer_id order by month_idx rows between unbounded preceding and current row
{%- endmacro %}

{# Evaluation months are published as 'YYYY-MM' text, the spec's notation. #}
{% macro month_label(date_expr) -%}
    {{ return(adapter.dispatch('month_label', 'keyaccounts')(date_expr)) }}
{%- endmacro %}
{% macro default__month_label(date_expr) -%} to_char({{ date_expr }}, 'YYYY-MM') {%- endmacro %}
{% macro duckdb__month_label(date_expr) -%} strftime({{ date_expr }}, '%Y-%m') {%- endmacro %}
