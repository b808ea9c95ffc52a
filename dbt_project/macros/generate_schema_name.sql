{# Schemas are the pipeline's stages (staging, intermediate, marts), not prefixed by the target schema. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
