{#- HQ's distribution of stability types for one cycle (:d), in long form:
    one row per (dimension, type, value) with the number of customers.
    `by` lists the snapshot columns HQ crosses with the type. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% for col in by %}
select
    '{{ col }}' as dimension,
    stability_type,
    coalesce(cast({{ col }} as text), '(none)') as value,
    count(*) as customers
from mkt_segment_snapshot
where cycle_date = {{ d.date_param('d') }}
group by
    stability_type,
    {{ col }}
{{ 'union all' if not loop.last }}
{% endfor %}
