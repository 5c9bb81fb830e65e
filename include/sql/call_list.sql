{#- One county's call list (外呼清单) for a cycle: its 'call' contacts in the call centre's order of
    priority — the order publish_county.sql filled the capacity in (campaign priority, then spend
    tier, highest first, then number). Bind parameters: d, county. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_order.sql' as o %}
select
    c.contact_id,
    c.msisdn,
    s.customer_name,
    t.stability_type,
    t.spend_tier,
    c.campaign_code,
    t.priority
from mkt_contact as c
join mkt_target as t
  on t.cycle_date = c.cycle_date and t.msisdn = c.msisdn
join mkt_segment_snapshot as s
  on s.cycle_date = c.cycle_date and s.msisdn = c.msisdn
where c.cycle_date = {{ d.date_param('d') }}
  and c.county_code = :county
  and c.channel = 'call'
order by {{ o.call_order('t') }}
