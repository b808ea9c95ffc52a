{# sources.md "Personal data": staging keeps a salted SHA-256 of the respondent only.
   The salt comes from KEYACCOUNTS_PII_SALT; the demo default is documented in README. #}
{% macro pii_hash(columns) -%}
    case when coalesce({% for c in columns %}nullif(trim({{ c }}), ''){{ ", " if not loop.last }}{% endfor %}) is null then null
    else sha256('{{ env_var("KEYACCOUNTS_PII_SALT", "keyaccounts-demo-salt") | replace("'", "''") }}'
        {%- for c in columns %} || '|' || coalesce(lower(trim({{ c }})), ''){% endfor %})
    end
{%- endmacro %}
