{#- Bundling rate per stability type for one cycle (:d): share with any hard or soft bundle active at D. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    stability_type,
    count(*) as customers,
    sum(case when bundle_kind = 'hard' then 1 else 0 end) as hard_bundled,
    sum(case when bundle_kind = 'soft' then 1 else 0 end) as soft_bundled
from mkt_segment_snapshot
where cycle_date = {{ d.date_param('d') }}
group by stability_type
