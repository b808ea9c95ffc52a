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

{# The duplicate rule of sources.md on raw rows with one key column: the rows of
   `raw_relation` (after `row_filter`) that win for their trimmed key, with their parsed
   `updated_at` as `_updated_at_utc` (parsed once: the parse is regular expressions, and in the
   window's order by it cost twice the ranking itself). Only the key, the timestamp and the
   row's place (_file_seq, _line: unique in raw) go through the window; the winners are then
   read back whole. Ranking full-width typed rows held every column of 20 million orders in
   the window and ran out of memory under a 4 GB limit at L (docs/benchmarks.md). #}
{% macro latest_raw_rows(raw_relation, key, row_filter='') -%}
select
    src.*,
    winners._updated_at_utc
from {{ raw_relation }} as src
inner join (
    select
        ranked._file_seq,
        ranked._line,
        ranked._updated_at_utc
    from (
        select
            parsed._file_seq,
            parsed._line,
            parsed._updated_at_utc,
            row_number() over (
                partition by parsed._key
                order by parsed._updated_at_utc desc nulls last, parsed._file_seq desc, parsed._line desc
            ) as _dedupe_rank
        from (
            select
                _file_seq,
                _line,
                trim({{ key }}) as _key,
                {{ parse_timestamp_utc('updated_at') }} as _updated_at_utc
            from {{ raw_relation }}
            {{ row_filter }}
        ) as parsed
    ) as ranked
    where ranked._dedupe_rank = 1
) as winners
    on src._file_seq = winners._file_seq and src._line = winners._line
{%- endmacro %}
