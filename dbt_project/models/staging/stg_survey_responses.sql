-- Personal data never leaves this model in clear: respondents become a salted hash.
with source as (
    {{ latest_raw_rows(source('raw', 'survey_responses'), 'response_id') }}
),

typed as (
    select
        trim(response_id) as response_id,
        trim(customer_id) as customer_id,
        nullif(trim(survey_id), '') as survey_id,
        {{ parse_timestamp_utc('submitted_at') }} as submitted_at_utc,
        cast(nullif(trim(nps_score), '') as integer) as nps_score,
        cast(nullif(trim(satisfaction), '') as integer) as satisfaction,
        cast(nullif(trim(product_quality), '') as integer) as product_quality,
        cast(nullif(trim(delivery), '') as integer) as delivery,
        cast(nullif(trim(after_sales_service), '') as integer) as after_sales_service,
        cast(nullif(trim(responsiveness), '') as integer) as responsiveness,
        nullif(trim(comment), '') as comment_text,
        {{ pii_hash(["respondent_name", "respondent_phone", "respondent_email"]) }} as respondent_hash,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
)

select
    response_id,
    customer_id,
    survey_id,
    submitted_at_utc,
    {{ business_date('submitted_at_utc') }} as submitted_on,
    nps_score,
    satisfaction,
    product_quality,
    delivery,
    after_sales_service,
    responsiveness,
    -- `comment` is a keyword, but it is the feed's column name and is published as such
    comment_text as comment,  -- noqa: RF04
    respondent_hash,
    updated_at_utc,
    source_file,
    source_line
from typed
