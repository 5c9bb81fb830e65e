{#- Bundling per stability type for one cycle (:d), counted as the plan counts it (economics.md):
    hard = customers with at least one hard bundle active at D, soft = with at least one soft
    bundle, bundled = with any; a customer with both is in hard and in soft (hard + soft >= bundled).
    Package users: a bundle of type `package` active at D (datamart.md's bundle table).
    Cycles segmented before revision 0004_plan have no flags: their strongest bundle stands in. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    stability_type,
    count(*) as customers,
    sum(coalesce(has_hard_bundle, case when bundle_kind = 'hard' then 1 else 0 end)) as hard_bundled,
    sum(coalesce(has_soft_bundle, case when bundle_kind = 'soft' then 1 else 0 end)) as soft_bundled,
    sum(case when bundle_kind is not null then 1 else 0 end) as bundled,
    sum(coalesce(has_package, 0)) as package_users
from mkt_segment_snapshot
where cycle_date = {{ d.date_param('d') }}
group by stability_type
