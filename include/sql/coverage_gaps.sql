{#- The coverage gap list (覆盖缺口): per county and stability type, the customers the hard rules
    allow but who have no offer this cycle, and why:
      capped       the frequency rules hold them back this cycle (contacts in the window or month);
      blocked      some active campaign targets them, but each such campaign is blocked for them
                   (the same campaign within its gap, a refusal within the block, the product held);
      no_campaign  no active campaign of the library targets them.
    Reads the cycle's snapshot and target list, tmp_coverage_excluded (coverage.sql's hard
    exclusions) and tmp_coverage_targeted (target_list.sql rendered with ignore_blocks: who would be
    offered something were no campaign blocked). Same contact rules as the target list
    (_contactable.sql). Bind parameters: d, window_start, month_start, recent_since. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
with recent as materialized (
    {{ c.recent_contacts(d) }}
),

uncovered as (
    select
        s.county_code,
        s.stability_type,
        case
            when {{ c.capped(policy, 'r') }} then 'capped'
            when g.msisdn is not null then 'blocked'
            else 'no_campaign'
        end as reason
    from mkt_segment_snapshot as s
    left join recent as r
        on r.msisdn = s.msisdn
    left join tmp_coverage_excluded as e
        on e.msisdn = s.msisdn
    left join tmp_coverage_targeted as g
        on g.msisdn = s.msisdn
    where s.cycle_date = {{ d.date_param('d') }}
      and not {{ c.hard_excluded('s', 'e') }}
      and not exists (
          select 1 from mkt_target as t
          where t.cycle_date = s.cycle_date
            and t.msisdn = s.msisdn)
)

select
    county_code,
    stability_type,
    reason,
    count(*) as customers
from uncovered
group by
    county_code,
    stability_type,
    reason
order by
    county_code,
    stability_type,
    reason
