{#- sources.md "Two kinds of source": a feed folder may be absent or empty (a company without a
    survey tool has no survey_responses), and the measures that depend on it are then null, not 0.
    A feed counts as delivered once its staging model holds a row. -#}
{% macro feed_delivered(relation) -%}
    exists (select 1 from {{ relation }})
{%- endmacro %}

{#- `expr` where the feeds it depends on were delivered (`delivered`: a boolean column), else null -#}
{% macro if_delivered(delivered, expr) -%}
    case when {{ delivered }} then {{ expr }} end
{%- endmacro %}
