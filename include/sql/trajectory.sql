{#- The marketing trajectory (营销轨迹), one row per contact of the cycles :a .. :b: what was
    recommended and when, through which channel and when it was taken up (the credited order), and
    the customer's average monthly bill over the `bill_months` months before the contact's month
    and over the (up to `bill_months`) months after it that are staged so far (stg_bill_month says
    which; a missing bill in a staged month is zero, as in the data mart). The averages are null
    until all months before / at least one month after are staged.
    Options: `msisdn` (one customer: bind :msisdn), `converted_only`. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_bill_window.sql' as bw %}
with c as (
    select c.contact_id, c.cycle_date, c.msisdn, c.county_code, c.campaign_code, c.product_code, c.variant,
           c.channel, c.segment_code, c.status, c.created_at, c.sent_at, c.delivered_at, c.response,
           c.responded_at, c.converted_at, c.order_id,
           {{ d.month_start('c.cycle_date', 0) }} as m0
    from mkt_contact as c
    where c.cycle_date >= {{ d.date_param('a') }} and c.cycle_date <= {{ d.date_param('b') }}
{%- if msisdn %}
      and c.msisdn = :msisdn
{%- endif %}
{%- if converted_only %}
      and c.converted_at is not null
{%- endif %}
),
months as (
    -- per contact month: how many of the months before / after are staged
    select m.m0,
           sum(case when s.month >= {{ d.month_start('m.m0', -bill_months) }} and s.month < m.m0
                    then 1 else 0 end) as before_months,
           sum(case when s.month > m.m0 and s.month <= {{ d.month_start('m.m0', bill_months) }}
                    then 1 else 0 end) as after_months
    from (select distinct m0 from c) as m
    left join stg_bill_month as s
      on s.month >= {{ d.month_start('m.m0', -bill_months) }} and s.month <= {{ d.month_start('m.m0', bill_months) }}
    group by m.m0
),
bills as (
    {{ bw.bills_before_after(d, 'c', bill_months, bill_months) }}
)
select c.contact_id, c.cycle_date, c.msisdn, c.county_code, c.campaign_code, c.product_code, c.variant,
       c.channel, c.segment_code, c.status, c.created_at, c.sent_at, c.delivered_at, c.response,
       c.responded_at, c.converted_at, c.order_id,
       o.channel as order_channel, o.agent_id as order_agent_id,
       case when m.before_months = {{ bill_months }}
            then {{ d.as_real('coalesce(b.before_sum, 0)') }} / {{ bill_months }} end as bill_before,
       case when m.after_months > 0
            then {{ d.as_real('coalesce(b.after_sum, 0)') }} / m.after_months end as bill_after,
       m.after_months
from c
join months as m on m.m0 = c.m0
left join bills as b on b.contact_id = c.contact_id
left join stg_order as o on o.order_id = c.order_id

