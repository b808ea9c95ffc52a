-- Survey responses without personal data: the respondent is a salted hash only.
select
    response_id,
    customer_id,
    survey_id,
    submitted_at_utc,
    submitted_on,
    nps_score,
    satisfaction,
    product_quality,
    delivery,
    after_sales_service,
    responsiveness,
    comment,
    respondent_hash,
    updated_at_utc
from {{ ref('stg_survey_responses') }}
