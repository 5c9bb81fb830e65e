{#- Customers served per agent shop in a month: distinct customers who topped up there. Runs in
    the data mart. Bind parameters: since, until (timestamps). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    agent_id,
    count(distinct msisdn) as customers_served
from {{ src }}recharge_event
where event_time >= {{ d.ts_param('since') }}
  and event_time < {{ d.ts_param('until') }}
group by agent_id
