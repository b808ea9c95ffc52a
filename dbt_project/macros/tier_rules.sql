{# metrics.md "Risk flags": a comma-separated list in a fixed order, '' when none. Each
   threshold compares unrounded values without division. The programme's two flags
   (docs/programme.md) come last, computed in int_interaction_windows (false without interactions). #}
{% macro risk_flags() -%}
    concat_ws(',',
        case when billed_due_12m > 0
                and collected_12m < {{ var('risk_low_collection_below') }} * billed_due_12m
            then 'low_collection' end,
        case when nps_12m < {{ var('risk_detractor_nps_below') }} then 'detractor' end,
        case when revenue_prev_12m > 0
                and revenue_12m - revenue_prev_12m < {{ var('risk_declining_growth_below') }} * revenue_prev_12m
            then 'declining' end,
        case when last_order_date is null
                or last_order_date <= month_end - {{ var('risk_inactive_days') }}
            then 'inactive_{{ var("risk_inactive_days") }}d' end,
        case when complaints_rising then 'complaints_rising' end,
        case when under_visited then 'under_visited' end
    )
{%- endmacro %}

{# A readable sentence for customer_tier_monthly.reason. #}
{% macro tier_reason() -%}
    case tier_change
        when 'override' then 'Manual override to ' || tier || ': ' || coalesce(override_reason, '')
            || ' (approved by ' || coalesce(approved_by, '') || ').'
        when 'new' then 'First evaluation: raw tier ' || raw_tier || ', assigned ' || tier || '.'
        when 'promoted' then 'Promoted from ' || previous_tier || ' to ' || tier || ': raw tier ' || raw_tier || '.'
        when 'unchanged' then 'Stays ' || tier || ': raw tier ' || raw_tier || '.'
        when 'held' then 'Held at ' || tier || ': raw tier ' || raw_tier || ' for ' || cast(months_below as varchar)
            || ' month(s), grace period {{ var("grace_months") }} month(s).'
        when 'demoted' then 'Demoted from ' || previous_tier || ' to ' || tier || ' after '
            || cast(months_below as varchar) || ' month(s) below.'
    end
    || case
        when value_rank is null then ' No positive value (V = ' || cast(value_score as varchar) || ').'
        else ' V = ' || cast(value_score as varchar) || ', rank ' || cast(value_rank as varchar)
            || ', share before ' || cast({{ publish_round('100 * share_before', 1) }} as varchar) || '%.'
    end
{%- endmacro %}
