{#- Coverage (a KPI): per county and stability type, how many customers there are, how many the
    hard rules exclude, how many the frequency rules hold back, how many may be contacted, and
    how many of those got an offer. Same contact rules as the target list (_contactable.sql).
    Bind parameters: the contact policy's (qz_outbound/policy.py). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
{% if step == 'excluded' %}
-- The cycle's hard exclusions as a table of their own, so the database has statistics for the
-- join below (joined as a unioned subquery, the planner had none, estimated billions of rows and
-- nested-looped 6.2 M customers against 140 k exclusions: past its 10-minute timeout at full scale).
create temporary table tmp_coverage_excluded as
select distinct msisdn from (
    {{ c.excluded_customers(d) }}
) as x
{% else %}
with recent as materialized (   -- the recent history aggregated once
    {{ c.recent_contacts(d) }}
),

excluded as (
    select msisdn from tmp_coverage_excluded
),

classified as (
    select
        s.county_code,
        s.stability_type,
        case when {{ c.hard_excluded('s', 'e') }} then 1 else 0 end as hard_excluded,
        case when {{ c.capped(policy, 'r') }} then 1 else 0 end as capped,
        case when t.msisdn is not null then 1 else 0 end as offered
    from mkt_segment_snapshot as s
    left join recent as r
        on r.msisdn = s.msisdn
    left join excluded as e
        on e.msisdn = s.msisdn
    left join mkt_target as t
        on t.cycle_date = s.cycle_date
       and t.msisdn = s.msisdn
    where s.cycle_date = {{ d.date_param('d') }}
)

select
    county_code,
    stability_type,
    count(*) as customers,
    sum(hard_excluded) as hard_excluded,
    sum(case when hard_excluded = 0 and capped = 1 then 1 else 0 end) as frequency_capped,
    sum(case when hard_excluded = 0 and capped = 0 then 1 else 0 end) as contactable,
    sum(case when hard_excluded = 0 and capped = 0 then offered else 0 end) as offered
from classified
group by
    county_code,
    stability_type
order by
    county_code,
    stability_type
{% endif %}
