{#- Campaign economics (economics.md, docs/economics.md), set work in marketing_db: for the contacts of
    the cycles :a .. :b, per period (the cycle date, or with period == 'month' the month's first day),
    campaign, slice and arm (contacted: channel sms/call/agent; control): customers, the ARPU change's
    n / mean / variance, conversions, customers retained, and the contact's cost drivers.

    ARPU change of a customer = mean bill over the after-months staged so far (the complete months after
    the cycle's month, at most `after_max`) − mean bill over the `before_months` months before it; a
    month without a bill row is 0 (stg_bill; stg_bill_month says which months are staged). Null while
    no after-month is staged ("not yet measurable"). Retained: not cancelled or pre_cancel in the latest
    subscriber snapshot (stg_subscriber; a customer no longer there counts as not retained).
    Slices: all, county:<code>, type:<stability type>, tier:<spend tier>, market:<segment or none>,
    channel:<sms|call|agent>, variant:<label>. The control arm has no channel or variant: those slices'
    control is the campaign's whole control group (the caller takes it from slice `all`). -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_bill_window.sql' as bw %}
with c as (
    select {% if period == 'month' %}{{ d.month_start('c.cycle_date', 0) }}{% else %}c.cycle_date{% endif %} as period,
           {{ d.month_start('c.cycle_date', 0) }} as m0,
           c.contact_id, c.msisdn, c.campaign_code, c.county_code, c.channel,
           case when c.channel = 'control' then 'control' else 'contacted' end as arm,
           coalesce(c.variant, '') as variant,
           {{ d.first_field("coalesce(c.segment_code, '')", '-') }} as stype,
           cast(substr(c.segment_code, length({{ d.first_field("c.segment_code", '-') }}) + 3, 2) as integer) as tier,
           a.converted, a.sent, a.delivered, a.dialled,
           case when c.channel = 'agent' then 1 else 0 end as agent_sms
    from mkt_contact as c
    -- an offer is its first contact row; a call-centre redial or callback (first_contact_id set,
    -- qz_outbound/callcentre.py) is the same customer again: its dial costs, its outcome counts
    join (
        select coalesce(first_contact_id, contact_id) as offer_id,
               max(case when converted_at is not null then 1 else 0 end) as converted,
               max(case when sent_at is not null or delivered_at is not null then 1 else 0 end) as sent,
               max(case when delivered_at is not null or (channel = 'call' and response is not null)
                        then 1 else 0 end) as delivered,
               sum(case when channel = 'call' and response is not null then 1 else 0 end) as dialled
        from mkt_contact
        where cycle_date >= {{ d.date_param('a') }}
        group by coalesce(first_contact_id, contact_id)
    ) as a on a.offer_id = c.contact_id
    where c.cycle_date >= {{ d.date_param('a') }} and c.cycle_date <= {{ d.date_param('b') }}
      and c.first_contact_id is null
),
months as (
    -- per contact month: how many of the months after it are staged (0: not yet measurable)
    select m.m0,
           sum(case when s.month > m.m0 and s.month <= {{ d.month_start('m.m0', after_max) }}
                    then 1 else 0 end) as after_months
    from (select distinct m0 from c) as m
    left join stg_bill_month as s
      on s.month > m.m0 and s.month <= {{ d.month_start('m.m0', after_max) }}
    group by m.m0
),
bills as (
    {{ bw.bills_before_after(d, 'c', before_months, after_max) }}
),
parts as (
    select o.contact_id, o.parts from sms_outbox as o
    where o.cycle_date >= {{ d.date_param('a') }} and o.cycle_date <= {{ d.date_param('b') }}
      and o.submitted_at is not null
),
paid as (
    select k.contact_id, sum(k.commission_yuan) as commission from mkt_agent_commission as k
    group by k.contact_id
),
x as (
    select c.period, c.campaign_code, c.arm, c.county_code, c.channel, c.variant, c.stype, c.tier,
           coalesce(s.market_segment, 'none') as market,
           m.after_months,
           case when m.after_months > 0
                then {{ d.as_real('coalesce(b.after_sum, 0)') }} / m.after_months
                     - {{ d.as_real('coalesce(b.before_sum, 0)') }} / {{ before_months }} end as change,
           c.converted, c.sent, c.delivered, c.dialled, c.agent_sms,
           case when s.status is not null and s.status not in ('cancelled', 'pre_cancel') then 1 else 0 end as retained,
           coalesce(p.parts, 0) as sms_parts,
           {{ d.as_real('coalesce(k.commission, 0)') }} as commission
    from c
    join months as m on m.m0 = c.m0
    left join bills as b on b.contact_id = c.contact_id
    left join stg_subscriber as s on s.msisdn = c.msisdn
    left join parts as p on p.contact_id = c.contact_id
    left join paid as k on k.contact_id = c.contact_id
),
cells as (
    -- the per-customer rows summed into cells first: the slices below are sums of these cells
    select period, campaign_code, arm, county_code, channel, variant, stype, tier, market,
           max(after_months) as after_months,
           count(*) as n, count(change) as n_change, sum(change) as sx, sum(change * change) as sxx,
           sum(converted) as converted, sum(retained) as retained, sum(sent) as sent,
           sum(delivered) as delivered, sum(dialled) as dialled, sum(agent_sms) as agent_sms,
           sum(sms_parts) as sms_parts, sum(commission) as commission
    from x
    group by period, campaign_code, arm, county_code, channel, variant, stype, tier, market
),
sliced as (
{%- for name, expr in [("all", "'all'"), ("county", "'county:' || county_code"),
                       ("type", "'type:' || stype"),
                       ("tier", "'tier:' || cast(tier as varchar(4))"),
                       ("market", "'market:' || market"),
                       ("channel", "'channel:' || channel"),
                       ("variant", "'variant:' || variant")] %}
    {{ 'union all' if not loop.first }}
    select period, campaign_code, {{ expr }} as slice, arm,
           max(after_months) as after_months, sum(n) as n, sum(n_change) as n_change, sum(sx) as sx,
           sum(sxx) as sxx, sum(converted) as converted, sum(retained) as retained, sum(sent) as sent,
           sum(delivered) as delivered, sum(dialled) as dialled, sum(agent_sms) as agent_sms,
           sum(sms_parts) as sms_parts, sum(commission) as commission
    from cells
    {%- if name == 'type' %} where stype <> ''{% elif name == 'tier' %} where tier is not null
    {%- elif name == 'channel' %} where arm = 'contacted'{% elif name == 'variant' %} where arm = 'contacted' and variant <> ''{% endif %}
    group by period, campaign_code, {{ expr ~ ', ' if name != 'all' }}arm
{%- endfor %}
)
select period, campaign_code, slice, arm, after_months, n, n_change,
       {{ d.as_real('sx') }} / nullif(n_change, 0) as mean_change,
       case when n_change > 1
            then ({{ d.as_real('sxx') }} - {{ d.as_real('sx') }} * sx / n_change) / (n_change - 1) end as var_change,
       converted, retained, sent, delivered, dialled, agent_sms, sms_parts, commission
from sliced
order by period, campaign_code, slice, arm
