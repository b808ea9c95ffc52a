-- Interactions (docs/programme.md): typed, de-duplicated (latest updated_at wins), with the
-- business dates of opened_at and closed_at. An interaction whose closed_at is before its
-- opened_at once both are instants (a pair the ingest check could not compare: one value with an
-- offset, one without) counts nowhere; quarantine.held_back lists it (closed_before_opened).
with source as (
    {{ latest_raw_rows(source('raw', 'interactions'), 'interaction_id') }}
),

typed as (
    select
        trim(interaction_id) as interaction_id,
        trim(customer_id) as customer_id,
        trim(kind) as kind,
        {{ parse_timestamp_utc('opened_at') }} as opened_at_utc,
        {{ parse_timestamp_utc('closed_at') }} as closed_at_utc,
        cast(nullif(trim(severity), '') as integer) as severity,
        nullif(trim(channel), '') as channel,
        _updated_at_utc as updated_at_utc,
        {{ load_metadata() }}
    from source
)

select
    interaction_id,
    customer_id,
    kind,
    opened_at_utc,
    {{ business_date('opened_at_utc') }} as opened_on,
    closed_at_utc,
    {{ business_date('closed_at_utc') }} as closed_on,
    severity,
    channel,
    coalesce(closed_at_utc < opened_at_utc, false) as closed_before_opened,
    updated_at_utc,
    source_file,
    source_line,
    _file_seq as source_file_seq
from typed
