{#- The month's conversions of agent recommendations (酬金, docs/agent-channel.md): an order staged
    for the month converts an agent recommendation of the same customer that listed the order's
    product (any of its products, mkt_agent_offer), made before the order and at most `window_days`
    before it. Paid once, to one shop: an order goes to the latest such recommendation, a
    recommendation is paid for its first order only (an order of a second listed product after one
    of the first earns nothing more), and a recommendation paid in another month is not paid again.
    Recommendations whose SMS never left (skipped, failed) earn nothing. Bind parameter: month. Result: one row per paid order. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% if dialect == 'sqlite' %}
{% set within = "julianday(o.order_time) >= julianday(e.event_time) and julianday(o.order_time) <= julianday(e.event_time) + " ~ window_days %}
{% else %}
{% set within = "o.order_time >= e.event_time and o.order_time <= e.event_time + interval '" ~ window_days ~ " days'" %}
{% endif %}
select
    order_id,
    contact_id,
    agent_id,
    county_code,
    msisdn,
    campaign_code,
    product_code,
    recommended_at,
    order_time
from (
    select
        m.*,
        row_number() over (partition by m.contact_id order by m.order_time, m.order_id) as first_for_contact
    from (
        select
            o.order_id,
            o.order_time,
            o.msisdn,
            o.product_code,
            c.contact_id,
            c.agent_id,
            e.agent_county as county_code,
            lo.campaign_code,
            c.created_at as recommended_at,
            row_number() over (partition by o.order_id
                               order by e.event_time desc, c.contact_id desc, lo.product_rank) as latest
        from stg_agent_order as o
        join mkt_contact as c
          on c.msisdn = o.msisdn
         and c.channel = 'agent'
        join mkt_agent_offer as lo
          on lo.contact_id = c.contact_id
         and lo.product_code = o.product_code
        join mkt_agent_event as e
          on e.contact_id = c.contact_id
        where o.month = {{ d.date_param('month') }}
          and c.status not in ('skipped', 'failed', 'cancelled')
          and {{ within }}
          and not exists (
              select 1 from mkt_agent_commission as paid
              where paid.contact_id = c.contact_id
                and paid.month <> {{ d.date_param('month') }})
    ) as m
    where m.latest = 1
) as credited
where first_for_contact = 1
order by order_id
