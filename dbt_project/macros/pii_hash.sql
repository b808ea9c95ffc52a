{# sources.md "Personal data": staging keeps a salted SHA-256 of the respondent only.
   The salt (KEYACCOUNTS_PII_SALT; the demo default is documented in README) is read from
   audit.pii_salt, which keyaccounts writes before each build (transform/dbt.py store_pii_salt):
   rendered into the SQL it would be written in clear to dbt's target folder and log. #}
{% macro pii_hash(columns) -%}
    {%- set salted -%}
        (select s.salt from audit.pii_salt as s)
        {%- for c in columns %} || '|' || coalesce(lower(trim({{ c }})), ''){% endfor %}
    {%- endset -%}
    case when coalesce({% for c in columns %}nullif(trim({{ c }}), ''){{ ", " if not loop.last }}{% endfor %}) is null then null
    else {{ sha256_hex(salted) }}
    end
{%- endmacro %}

{# Lower-case hex SHA-256 of the UTF-8 bytes of a text. #}
{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex', 'keyaccounts')(expr)) }}
{%- endmacro %}
{% macro default__sha256_hex(expr) -%} encode(sha256(convert_to({{ expr }}, 'UTF8')), 'hex') {%- endmacro %}
{% macro duckdb__sha256_hex(expr) -%} sha256({{ expr }}) {%- endmacro %}
