{# sources.md "Duplicates": the row with the latest updated_at wins (instants compared),
   ties go to the file taken later, then to the later line. Use as a CTE body and keep
   the rows where `_dedupe_rank = 1`. #}
{% macro latest_row(relation, key_columns, order_by='updated_at_utc desc nulls last, ') -%}
select
    *,
    row_number() over (
        partition by {{ key_columns | join(', ') }}
        order by {{ order_by }}_file_seq desc, _line desc
    ) as _dedupe_rank
from {{ relation }}
{%- endmacro %}

{# Load metadata every staging model carries: where the row came from, and the keys of
   the duplicate rule (file order, line). #}
{% macro load_metadata() -%}
    _file as source_file,
    _line as source_line,
    _file_seq,
    _line
{%- endmacro %}
