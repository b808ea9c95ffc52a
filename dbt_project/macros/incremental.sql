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
{% macro staging_version() -%} 2 {%- endmacro %}

{# What staged rows depend on besides their raw rows and rates. #}
{% macro staging_build_key() -%}
    v{{ staging_version() }}|{{ var('reporting_currency') }}|{{ var('default_currency') }}|{{ var('business_time_zone') }}
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

{# The two bookkeeping columns restage_filter reads back. File sequence numbers are global and
   grow, so the watermark also counts the rates feed: a row re-staged for a new rate then gets a
   watermark above every earlier one, which is how the incremental intermediates below find it. #}
{% macro restage_columns(raw_relation) -%}
    greatest(
        (select coalesce(max(w._file_seq), -1) from {{ raw_relation }} as w),
        (select coalesce(max(x._file_seq), -1) from {{ source('raw', 'fx_rates') }} as x)
    ) as _raw_watermark,
    cast('{{ staging_build_key() }}' as varchar) as _build_key
{%- endmacro %}


{# Incremental row-grain intermediates (int_orders_completed, int_invoices_counted,
   int_payments_applied, int_invoice_payment_steps, int_invoice_on_time, int_invoice_open_pieces):
   `append`, after a pre-hook (delete_changed_keys) that deletes every key that can have changed.
   The model then inserts the rows of the keys in that set that it no longer holds
   (only_changed_keys). A key can have changed when a staged row it is built from was re-staged
   after the model's last build: its `_raw_watermark` is above the `_stg_watermark` the model
   stored. A model built under another intermediate_build_key() (staging's, this version, the
   through_month) is emptied by the pre-hook, and so rebuilt whole: the intermediates filter on
   end(through_month), so a new month rebuilds them. #}

{# Bump when the logic of these intermediates changes. #}
{% macro intermediate_version() -%} 2 {%- endmacro %}

{% macro intermediate_build_key() -%}
    {{ staging_build_key() }}|i{{ intermediate_version() }}|{{ var('through_month') }}
{%- endmacro %}

{# true when this model's table exists with the bookkeeping columns (else it is built whole) #}
{% macro _has_intermediate_bookkeeping() -%}
    {%- if is_incremental() -%}
        {{- return('_stg_watermark' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list)) -}}
    {%- endif -%}
    {{- return(false) -}}
{%- endmacro %}

{# the staging watermark the model consumed at its last build (-1: none) #}
{% macro consumed_watermark() -%}
    {%- if _has_intermediate_bookkeeping() -%}
        (select coalesce(max(c._stg_watermark), -1) from {{ this }} as c)
    {%- else -%}
        -1
    {%- endif -%}
{%- endmacro %}

{# keys of a staging model re-staged since this model's last build #}
{% macro restaged_keys(staging_relation, key, column=none) -%}
    select s.{{ column or key }} from {{ staging_relation }} as s
    where s._raw_watermark > {{ consumed_watermark() }}
{%- endmacro %}

{# invoices whose payment-derived rows can have changed: re-staged invoices, and the invoices
   every version of a re-staged payment named (a payment moved to another invoice changes both) #}
{% macro changed_invoice_ids() -%}
    {{ restaged_keys(ref('stg_invoices'), 'invoice_id') }}
    union all
    select trim(r.invoice_id) from {{ source('raw', 'payments') }} as r
    where trim(r.payment_id) in ({{ restaged_keys(ref('stg_payments'), 'payment_id') }})
{%- endmacro %}

{# pre-hook: delete the keys that can have changed, or every row under another build key #}
{% macro delete_changed_keys(key, changed_keys_sql) -%}
    {%- if not is_incremental() -%}
        select 1
    {%- elif not _has_intermediate_bookkeeping() -%}
        delete from {{ this }}
    {%- else -%}
        delete from {{ this }}
        where
            {{ key }} in ({{ changed_keys_sql }})
            or (select max(b._build_key) from {{ this }} as b) is distinct from '{{ intermediate_build_key() }}'
    {%- endif -%}
{%- endmacro %}

{# the model's filter: the changed keys it no longer holds (so never a key twice, even if the
   delete moved the consumed watermark back) #}
{% macro only_changed_keys(key, changed_keys_sql, alias=none) -%}
    {%- if is_incremental() %}
        {%- set col = (alias ~ '.' if alias else '') ~ key %}
        and {{ col }} in ({{ changed_keys_sql }})
        and {{ col }} not in (select h.{{ key }} from {{ this }} as h where h.{{ key }} is not null)
    {%- endif -%}
{%- endmacro %}

{# the model's bookkeeping columns: the staging watermark it consumed, and its build key #}
{% macro intermediate_columns(staging_relations) -%}
    greatest(
        {%- for r in staging_relations %}
        (select coalesce(max(w._raw_watermark), -1) from {{ r }} as w){{ "," if not loop.last }}
        {%- endfor %}
    ) as _stg_watermark,
    cast('{{ intermediate_build_key() }}' as varchar) as _build_key
{%- endmacro %}

{# payments whose application can have changed: re-staged payments, and the payments of
   re-staged invoices (their currency and rate decide how a payment applies) #}
{% macro changed_payment_ids() -%}
    {{ restaged_keys(ref('stg_payments'), 'payment_id') }}
    union all
    select p2.payment_id from {{ ref('stg_payments') }} as p2
    where p2.invoice_id in ({{ restaged_keys(ref('stg_invoices'), 'invoice_id') }})
{%- endmacro %}

{# on_schema_change='sync_all_columns' changes a column's type when an upgrade changes it (fx_rate
   became decimal(38, 18) in staging_version 2). DuckDB 1.4 then refuses to commit the model's
   transaction ("another transaction has altered this table") when the table was also written in
   it before the type change (the pre-hook's delete_changed_keys) or when the change is dbt's
   default add / update / drop / rename. So the type is changed in place, in a transaction of its
   own: what the model did before is committed first. A failure after that leaves deleted keys,
   which the next run rebuilds (their staged rows are still newer than what the table holds). #}
{% macro duckdb__alter_column_type(relation, column_name, new_column_type) -%}
    {% call statement('alter_column_type') %}
        commit;
        begin transaction;
        alter table {{ relation.render() }} alter column {{ adapter.quote(column_name) }} set data type {{ new_column_type }}
    {% endcall %}
{%- endmacro %}

{# The same for a column an upgrade adds or drops (int_invoices_counted.amount, intermediate_version 2):
   dbt-duckdb's own add / drop column, run in the model's transaction after the pre-hook's delete, makes
   DuckDB 1.4 refuse the commit, on every retry, until --full-refresh. The columns change in a
   transaction of their own, after what the model did before is committed. #}
{% macro duckdb__alter_relation_add_remove_columns(relation, add_columns, remove_columns) -%}
    {% call statement('alter_relation_add_remove_columns') %}
        commit;
        begin transaction;
        {%- for column in add_columns or [] %}
        alter {{ relation.type }} {{ relation.render() }} add column {{ adapter.quote(column.name) }} {{ column.data_type }};
        {%- endfor %}
        {%- for column in remove_columns or [] %}
        alter {{ relation.type }} {{ relation.render() }} drop column {{ adapter.quote(column.name) }};
        {%- endfor %}
    {% endcall %}
{%- endmacro %}
