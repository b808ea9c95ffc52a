{# Incremental staging (operations.md: daily runs cost in proportion to the new data).
   The large staging models (orders, invoices, payments) are `incremental`, delete+insert by key.
   A run re-stages only the keys that can have changed since the table was built:
   - keys with a row in a raw file taken since then (`_file_seq` above the table's `_raw_watermark`);
     all of the key's raw rows are read again, so the duplicate rule picks among every version;
   - keys whose month's conversion rate changed since (a rate delivered late or corrected);
   - every key when the table was built under another staging_build_key(): other vars, or staging
     code of another staging_version() (a table from before incremental staging has no key).
   `keyaccounts run --full-refresh` rebuilds everything from raw. #}

{# Bump when the logic of staging changes (typing, dedupe, conversion), so that an upgrade
   re-stages every row on its first run. #}
{% macro staging_version() -%} 1 {%- endmacro %}

{# What staged rows depend on besides their raw rows and rates. #}
{% macro staging_build_key() -%}
    v{{ staging_version() }}|{{ var('reporting_currency') }}|{{ var('business_time_zone') }}
{%- endmacro %}

{# The filter on the raw relation: empty on a full build. rate_date_col: the staged date whose
   month gives the conversion rate (none for a model that does not convert). #}
{% macro restage_filter(key, raw_relation, rate_date_col=none) -%}
    {%- if is_incremental() -%}
        {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- if '_build_key' in existing %}
    where
        trim({{ key }}) in (
            select trim(r.{{ key }}) from {{ raw_relation }} as r
            where r._file_seq > (select coalesce(max(t._raw_watermark), -1) from {{ this }} as t)
            {%- if rate_date_col %}
            union all
            select s.{{ key }} from {{ this }} as s
            {{ join_month_rate('s', rate_date_col) }}
            where {{ fx_rate_for('s.currency', 'fx.rate_to_reporting') }} is distinct from s.fx_rate
            {%- endif %}
        )
        or (select max(b._build_key) from {{ this }} as b) is distinct from '{{ staging_build_key() }}'
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# The two bookkeeping columns restage_filter reads back. #}
{% macro restage_columns(raw_relation) -%}
    (select max(w._file_seq) from {{ raw_relation }} as w) as _raw_watermark,
    cast('{{ staging_build_key() }}' as varchar) as _build_key
{%- endmacro %}
