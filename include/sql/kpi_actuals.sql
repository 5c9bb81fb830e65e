{#- The county KPI figures of one month (economics.md "KPI targets"; qz_outbound/kpi.py), per county
    and cycle date, so the month's total and its trend over the cycles come from the same rows.

    query = 'conversions': contacts of the month's cycles (SMS, call, agent) and those credited with
    a conversion in the contact history.
    query = 'calls': the month's call contacts, dialled (any outcome uploaded) and connected, by the
    call-centre classes of _call_status.sql (a redialled customer counts once, connected if any try was).
    query = 'bundling': stock customers in each cycle's snapshot and those with any open hard or soft
    bundle (combined bundling, as segment_bundling.sql counts it).
    query = 'economics': incremental revenue and customers kept of mkt_campaign_economics' county
    slices, measured rows only (after_months > 0).

    Bind parameters: month_start, month_end (exclusive).
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_call_status.sql' as cs %}
{% if query == 'conversions' %}
select
    county_code,
    cycle_date,
    -- an offer once: a call-centre redial or callback (first_contact_id set) is the same offer
    sum(case when first_contact_id is null then 1 else 0 end) as contacts,
    sum(case when converted_at is not null then 1 else 0 end) as conversions
from mkt_contact
where cycle_date >= {{ d.date_param('month_start') }}
  and cycle_date < {{ d.date_param('month_end') }}
  and channel in ('sms', 'call', 'agent')
group by county_code, cycle_date
{% elif query == 'calls' %}
select
    county_code,
    cycle_date,
    sum(dialled) as dialled,
    sum(connected) as connected
from (
    -- each customer's offer once (its redials and callbacks are tries of the same offer), in the
    -- cycle it was first phoned: dialled if any try was, connected if any try connected
    select
        c.county_code,
        min(c.cycle_date) as cycle_date,
        max(case when {{ cs.is_dialled('o.outcome') }} then 1 else 0 end) as dialled,
        max(case when {{ cs.is_connected('o.outcome') }} then 1 else 0 end) as connected
    from mkt_contact as c
    left join mkt_call_outcome as o
        on o.contact_id = c.contact_id
    where c.cycle_date >= {{ d.date_param('month_start') }}
      and c.cycle_date < {{ d.date_param('month_end') }}
      and c.channel = 'call'
    group by c.county_code, coalesce(c.first_contact_id, c.contact_id)
) as per_call
group by county_code, cycle_date
{% elif query == 'bundling' %}
select
    county_code,
    cycle_date,
    count(*) as customers,
    sum(case when bundle_kind in ('hard', 'soft') then 1 else 0 end) as bundled
from mkt_segment_snapshot
where cycle_date >= {{ d.date_param('month_start') }}
  and cycle_date < {{ d.date_param('month_end') }}
group by county_code, cycle_date
{% elif query == 'economics' %}
select
    substr(slice, 8) as county_code,
    cycle_date,
    sum(incremental_revenue) as incremental_revenue,
    sum(customers_kept) as customers_kept,
    count(*) as measured_rows
from mkt_campaign_economics
where slice like 'county:%'
  and after_months > 0
  and cycle_date >= {{ d.date_param('month_start') }}
  and cycle_date < {{ d.date_param('month_end') }}
group by substr(slice, 8), cycle_date
{% endif %}
