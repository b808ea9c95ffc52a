{#- on-run-start: a run that claimed marts_build (KEYACCOUNTS_BUILD_OWNER; keyaccounts.transform.build_claim)
    stops if another run has claimed it since, instead of writing models into that run's build. An
    environment variable read only when executing, not a var: a var that changes every run would make
    dbt re-parse the whole project on every run. -#}
{% macro check_build_owner() %}
    {%- set owner = env_var('KEYACCOUNTS_BUILD_OWNER', '') if execute else '' -%}
    {%- if owner -%}
        {%- set result = run_query("select owner from audit.build_claim") -%}
        {%- set current = result.columns[0].values()[0] if result.rows | length > 0 else none -%}
        {%- if current != owner -%}
            {{ exceptions.raise_compiler_error(
                "the marts are being rebuilt by another run (" ~ current ~ "), not by " ~ owner
                ~ ": this run stops and publishes nothing") }}
        {%- endif -%}
    {%- endif -%}
    select 1
{% endmacro %}
