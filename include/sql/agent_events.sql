{#- Recharge events of a time range with what the agent channel's decision needs from the data mart,
    read once when the event is first seen (docs/agent-channel.md). Runs in the data mart.
    An event id the data mart holds more than once is one event (`copies` says how many rows).
    Bind parameters: since, until (timestamps, Asia/Shanghai local), complaint_since. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
with topup as (
    select
        event_id,
        min(msisdn) as msisdn,
        min(agent_id) as agent_id,
        min(amount_yuan) as amount_yuan,
        min(event_time) as event_time,
        count(*) as copies
    from {{ src }}recharge_event
    where event_time >= {{ d.ts_param('since') }}
      and event_time < {{ d.ts_param('until') }}
    group by event_id
)

select
    t.event_id,
    t.msisdn,
    t.agent_id,
    t.amount_yuan,
    t.event_time,
    t.copies,
    case when a.agent_id is null then 0 else 1 end as agent_known,
    a.agent_msisdn,
    a.outlet_name,
    a.county_code as agent_county,
    s.status as customer_status,
    s.county_code as customer_county,
    case when exists (
        select 1 from {{ src }}dnd_list as n where n.msisdn = t.msisdn
    ) then 1 else 0 end as dnd,
    -- the contact policy's complaint rule, as the daily cycle stages it
    case when exists (
        select 1 from {{ src }}complaint as k
        where k.msisdn = t.msisdn
          and k.category in ('marketing_sms', 'marketing_call')
          and k.complaint_time >= {{ d.ts_param('complaint_since') }}
    ) then 1 else 0 end as complaint
from topup as t
left join {{ src }}agent as a
    on a.agent_id = t.agent_id
left join {{ src }}subscriber as s
    on s.msisdn = t.msisdn
