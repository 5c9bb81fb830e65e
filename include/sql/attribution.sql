{#- Which contact gets the credit for each staged order not yet attributed: a contact of the same
    customer for the order's product, made on or before the order's day and at most
    `window_days` before it; the latest such contact wins (contact-policy.md). Control contacts
    are matched the same way, so the control group's conversion is measured like everyone's.
    A contact is credited with its first order only. Result: order_id, contact_id. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select order_id, contact_id
from (
    select
        m.order_id,
        m.contact_id,
        row_number() over (partition by m.contact_id order by m.order_time, m.order_id) as first_for_contact
    from (
        select
            o.order_id,
            o.order_time,
            c.contact_id,
            row_number() over (partition by o.order_id
                               order by c.cycle_date desc, c.created_at desc, c.contact_id desc) as latest
        from stg_order as o
        join mkt_contact as c
          on c.msisdn = o.msisdn
         and c.product_code = o.product_code
        where o.contact_id is null
          and c.converted_at is null
          and c.channel in ('sms', 'call', 'agent', 'control')
          and c.status not in ('skipped', 'failed', 'cancelled')
          and c.cycle_date <= {{ d.date_of('o.order_time') }}
          and {{ d.date_of('o.order_time') }} <= {{ d.add_days('c.cycle_date', window_days) }}
    ) as m
    where m.latest = 1
) as credited
where first_for_contact = 1
