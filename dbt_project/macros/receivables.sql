{# metrics.md "Receivables", aging of outstanding_end by days past due at end(M)
   (end(M) - due_date): each bucket with the first day past due it takes; `not_due` (<= 0)
   takes the rest. The one place the bounds are written. #}
{% macro aging_buckets() -%}
    {{ return([('overdue_1_30', 1), ('overdue_31_60', 31), ('overdue_61_90', 61), ('overdue_90_plus', 91)]) }}
{%- endmacro %}

{# The aging bucket of `days_past_due`, by name. #}
{% macro aging_bucket(days_past_due) -%}
    case
        {%- for name, first_day in aging_buckets() | reverse %}
            when {{ days_past_due }} >= {{ first_day }} then '{{ name }}'
        {%- endfor %}
        else 'not_due'
    end
{%- endmacro %}

{# One column per overdue bucket, <name>_from_idx: the first month M whose end is that many days
   past `due_date` (end(M) >= due_date + k exactly when M >= the month of due_date + k). #}
{% macro aging_from_indexes(due_date) -%}
    {%- for name, first_day in aging_buckets() -%}
        cast({{ month_index(due_date ~ ' + ' ~ first_day) }} as integer) as {{ name }}_from_idx
        {{- ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}

{# metrics.md "Receivables": what is paid on an invoice counts up to its amount, the excess not. The cap
   is taken in the invoice's own currency (a payment is in it), then converted once at the invoice's
   rate: a fully paid invoice converts to exactly its amount_reporting, whatever the rate's decimals.
   The one place the cap is written (collected, on time). #}
{% macro capped_collected(invoice_amount, paid, invoice_rate) -%}
    {{ to_reporting('least(' ~ invoice_amount ~ ', ' ~ paid ~ ')', invoice_rate) }}
{%- endmacro %}
