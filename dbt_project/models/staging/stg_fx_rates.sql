-- fx_rates has no updated_at: the later file, then the later line, wins.
with source as (
    select * from {{ source('raw', 'fx_rates') }}
),

typed as (
    select
        trim(currency) as currency,
        trim(month) as rate_month,
        {{ cast_input_rate("trim(rate_to_reporting)") }} as rate_to_reporting,
        {{ load_metadata() }}
    from source
),

deduplicated as (
    {{ latest_row('typed', ['currency', 'rate_month'], order_by='') }}
)

select
    currency,
    rate_month,
    cast(rate_month || '-01' as date) as month_start,
    rate_to_reporting,
    source_file,
    source_line
from deduplicated
where _dedupe_rank = 1
