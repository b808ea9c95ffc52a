{# The grain of a model: no two rows share these columns (dbt_utils is not a dependency:
   packages would need the dbt hub at install time). #}
{% test keyaccounts_unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
