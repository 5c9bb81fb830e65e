{#- A campaign's conversion history for its expected conversion rate (budgets): contacts made
    (SMS or call) in the months before this one and those converted before this month began.
    Fixed for the month, so every cycle and every re-run of the month expects the same rate.
    Bind parameters: month_start. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
select
    campaign_code,
    -- an offer once: a call-centre redial or callback (first_contact_id set) is the same offer
    sum(case when first_contact_id is null then 1 else 0 end) as contacted,
    sum(case when converted_at is not null and converted_at < {{ d.date_param('month_start') }} then 1 else 0 end)
        as converted
from mkt_contact
where cycle_date < {{ d.date_param('month_start') }}
  and channel in ('sms', 'call')
group by campaign_code
