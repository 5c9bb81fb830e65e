{#- Budgets before publishing (economics.md "Budgets"; qz_outbound/budgets.py says why each rule).

  Every row of the cycle's validated list (campaigns validation held back left out) gets the
  channel publish_county.sql would give it: control; a call within the county's capacity in call
  order; an SMS where the campaign allows it; else none (it waits, costing nothing). Its cost:
  a call costs call_dialled, an SMS its parts x sms_part, and a contacted row adds the campaign's
  expected conversion rate x its offer cost.

  step = 'cut': rows that would take a campaign (or a county of it) over its monthly budget, given
  what its earlier cycles of the month committed, go to mkt_budget_cut. Customers are kept in call
  order (_call_order.sql), a prefix per county budget, then a prefix of what remains per campaign
  budget. Control rows cost nothing and are cut at the same point of the order, so the control
  arm stays comparable with the contacted customers kept.

  step = 'commit': the kept rows, split again as publishing will split them, summed per campaign
  and county into mkt_budget_commit (the cycle's committed cost).

  The per-campaign and per-county constants (rates, offer costs, SMS parts, capacities, budgets)
  are inlined as CASE expressions: joining small literal tables cost SQLite a scan per list row.
  A comparison with a missing budget (CASE without a match: null) is never true: no cut.

  Context: step, campaigns [{code, offer_cost, rate}], parts [(code, [(variant, parts)])], capacity
  [(county, calls)], budgets [{code, county ('' = the campaign's own), yuan}], costs (sms_part,
  call_dialled). Bind parameters: d, month_start.
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_order.sql' as o %}
{% macro num(x) %}{{ '%.6f' % x }}{% endmacro %}
{% macro lookup(code, by_code, variant) %}case {{ code }}{% for k, variants in by_code %} when '{{ k }}' then case {{ variant }}{% for v, n in variants %} when '{{ v }}' then {{ n }}{% endfor %} else 0 end{% endfor %} else 0 end{% endmacro %}
{% macro campaign_budget(code) %}case{% for b in budgets if not b.county %} when {{ code }} = '{{ b.code }}' then {{ num(b.yuan) }}{% endfor %} when 1 = 0 then 0.0 end{% endmacro %}
{% macro county_budget(code, county) %}case{% for b in budgets if b.county %} when {{ code }} = '{{ b.code }}' and {{ county }} = '{{ b.county }}' then {{ num(b.yuan) }}{% endfor %} when 1 = 0 then 0.0 end{% endmacro %}
{% if step == 'cut' %}
insert into mkt_budget_cut (cycle_date, msisdn, campaign_code, county_code, is_control, by_county)
{% else %}
insert into mkt_budget_commit (cycle_date, campaign_code, county_code, sms_contacts, sms_parts, calls,
                               expected_conversions, committed_yuan, cut_rows)
{% endif %}
with earlier as materialized (
    -- what the month's earlier cycles committed, per campaign and county
    select
        campaign_code,
        county_code,
        sum(committed_yuan) as yuan
    from mkt_budget_commit
    where cycle_date >= {{ d.date_param('month_start') }}
      and cycle_date < {{ d.date_param('d') }}
    group by campaign_code, county_code
),

earlier_campaign as materialized (
    select
        campaign_code,
        sum(yuan) as yuan
    from earlier
    group by campaign_code
),

listed as (
    select
        t.*,
        {% if step == 'commit' %}case when c.msisdn is not null then 1 else 0 end{% else %}0{% endif %} as is_cut
    from mkt_target as t
    {%- if step == 'commit' %}
    left join mkt_budget_cut as c
        on c.cycle_date = t.cycle_date
        and c.msisdn = t.msisdn
    {%- endif %}
    where t.cycle_date = {{ d.date_param('d') }}
      and not exists (
          select 1 from mkt_target_hold as h
          where h.cycle_date = t.cycle_date
            and h.campaign_code = t.campaign_code)
),

ranked as (
    -- the call rank as publish_county.sql computes it (per county, in call order)
    select
        listed.*,
        case when call_eligible = 1 and is_control = 0 and is_cut = 0 then
            row_number() over (
                partition by county_code, call_eligible, is_control, is_cut
                order by {{ o.call_order('listed') }})
        end as call_rank
    from listed
),

planned as (
    select
        r.msisdn,
        r.county_code,
        r.campaign_code,
        r.priority,
        r.spend_tier,
        r.is_control,
        r.is_cut,
        case
            when r.is_cut = 1 then 'cut'
            when r.is_control = 1 then 'control'
            when r.call_rank is not null and r.call_rank <= case r.county_code{% for county, calls in capacity %} when '{{ county }}' then {{ calls }}{% endfor %} else 0 end then 'call'
            when r.sms_allowed = 1 then 'sms'
        end as channel,
        {{ lookup('r.campaign_code', parts, 'coalesce(r.variant, \'\')') }} as parts,
        case r.campaign_code{% for c in campaigns %} when '{{ c.code }}' then {{ num(c.rate) }}{% endfor %} else 0 end as rate,
        case r.campaign_code{% for c in campaigns %} when '{{ c.code }}' then {{ num(c.offer_cost) }}{% endfor %} else 0 end
            as offer_cost
    from ranked as r
),

costed as (
    select
        planned.*,
        case channel
            when 'call' then {{ num(costs.call_dialled) }} + rate * offer_cost
            when 'sms' then parts * {{ num(costs.sms_part) }} + rate * offer_cost
            else 0
        end as cost
    from planned
)
{% if step == 'cut' %},

county_running as (
    select
        costed.*,
        sum(cost) over (
            partition by campaign_code, county_code
            order by {{ o.call_order('costed') }}
            rows between unbounded preceding and current row) as running
    from costed
),

county_checked as (
    select
        r.*,
        case when coalesce(e.yuan, 0) + r.running > {{ county_budget('r.campaign_code', 'r.county_code') }} + 0.000001
            then 0 else 1 end as county_ok
    from county_running as r
    left join earlier as e
        on e.campaign_code = r.campaign_code
        and e.county_code = r.county_code
),

campaign_running as (
    select
        county_checked.*,
        sum(case when county_ok = 1 then cost else 0 end) over (
            partition by campaign_code
            order by {{ o.call_order('county_checked') }}
            rows between unbounded preceding and current row) as running_all
    from county_checked
)

select
    {{ d.date_param('d') }} as cycle_date,
    r.msisdn,
    r.campaign_code,
    r.county_code,
    r.is_control,
    1 - r.county_ok as by_county
from campaign_running as r
left join earlier_campaign as e
    on e.campaign_code = r.campaign_code
where r.county_ok = 0
   or coalesce(e.yuan, 0) + r.running_all > {{ campaign_budget('r.campaign_code') }} + 0.000001
{% else %}

select
    {{ d.date_param('d') }} as cycle_date,
    campaign_code,
    county_code,
    sum(case when channel = 'sms' then 1 else 0 end) as sms_contacts,
    sum(case when channel = 'sms' then parts else 0 end) as sms_parts,
    sum(case when channel = 'call' then 1 else 0 end) as calls,
    sum(case when channel in ('sms', 'call') then rate else 0 end) as expected_conversions,
    sum(cost) as committed_yuan,
    sum(is_cut) as cut_rows
from costed
group by campaign_code, county_code
{% endif %}
