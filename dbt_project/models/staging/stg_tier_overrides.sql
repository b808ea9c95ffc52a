with source as (
    select * from {{ source('raw', 'tier_overrides') }}
),

typed as (
    select
        trim(customer_id) as customer_id,
        cast(trim(eval_month) || '-01' as date) as eval_month,
        trim(tier) as tier,
        trim(reason) as override_reason,
        trim(approved_by) as approved_by,
        {{ parse_timestamp_utc('updated_at') }} as updated_at_utc,
        {{ load_metadata() }}
    from source
),

deduplicated as (
    {{ latest_row('typed', ['customer_id', 'eval_month']) }}
)

select
    customer_id,
    eval_month,
    tier,
    override_reason,
    approved_by,
    updated_at_utc,
    source_file,
    source_line
from deduplicated
where _dedupe_rank = 1
