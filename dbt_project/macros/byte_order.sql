{# Ties in V are broken by customer_id in byte order, whatever the database collation. #}
{% macro byte_order(col) -%}
    {{ return(adapter.dispatch('byte_order', 'keyaccounts')(col)) }}
{%- endmacro %}
{% macro default__byte_order(col) -%} {{ col }} collate "C" {%- endmacro %}
{# DuckDB compares VARCHAR by its UTF-8 bytes by default. #}
{% macro duckdb__byte_order(col) -%} {{ col }} {%- endmacro %}
