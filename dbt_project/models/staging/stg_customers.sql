with source as (
    {{ latest_raw_rows(source('raw', 'customers'), 'customer_id') }}
),

typed as (
    select
        trim(customer_id) as customer_id,
        trim(customer_name) as customer_name,
        nullif(trim(industry), '') as industry,
        nullif(trim(scope), '') as scope,
        nullif(trim(region), '') as region,
        nullif(trim(account_manager), '') as account_manager,
        cast(trim(signed_on) as date) as signed_on,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
)

select
    customer_id,
    customer_name,
    industry,
    scope,
    region,
    account_manager,
    signed_on,
    updated_at_utc,
    source_file,
    source_line
from typed
