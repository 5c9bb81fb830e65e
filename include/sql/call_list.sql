{#- One county's call list (外呼清单) for a cycle: its 'call' contacts in the call centre's order —
    the day's callbacks and redials first (qz_outbound/callcentre.py: they took the capacity first),
    then new customers in the order of priority publish_county.sql filled the capacity in (campaign
    priority, then spend tier, highest first, then number). The segment words come from the cycle's
    snapshot (a follow-up has no row in the cycle's target list: priority 0, so follow-ups of one
    kind go by spend tier). Bind parameters: d, county. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_order.sql' as o %}
select
    k.contact_id,
    k.msisdn,
    k.customer_name,
    k.stability_type,
    k.spend_tier,
    k.campaign_code,
    k.priority,
    k.call_kind,
    k.attempt
from (
    select
        c.contact_id,
        c.msisdn,
        s.customer_name,
        s.stability_type,
        s.spend_tier,
        c.campaign_code,
        coalesce(t.priority, 0) as priority,
        c.call_kind,
        coalesce(c.attempt, 1) as attempt,
        case c.call_kind when 'callback' then 0 when 'redial' then 1 else 2 end as kind_rank
    from mkt_contact as c
    join mkt_segment_snapshot as s
      on s.cycle_date = c.cycle_date and s.msisdn = c.msisdn
    left join mkt_target as t
      on t.cycle_date = c.cycle_date and t.msisdn = c.msisdn and c.first_contact_id is null
    where c.cycle_date = {{ d.date_param('d') }}
      and c.county_code = :county
      and c.channel = 'call'
) as k
order by k.kind_rank, {{ o.call_order('k') }}
