-- Survey responses without personal data (sources.md): not even the respondent's salted hash,
-- which staging keeps for de-duplication only.
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
    updated_at_utc
from {{ ref('stg_survey_responses') }}
